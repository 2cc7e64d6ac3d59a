"""Chains of thought of the ledger task (`memento.tasks.ledger`) for `memento data build`, and the same
problems as plain chain-of-thought training traces (the baseline's data).

Each record is asked exactly as `memento eval --benchmark ledger-N` asks it (`build_prompt`), from
training seeds (disjoint from the held-out ones eval uses). The plain traces (``--plain``) hold the
same reasoning with no memento tokens, in the form `memento train` reads: a trace of no blocks whose
answer is the reasoning followed by the boxed answer (`memento train` renders it after an empty
``<think>\n</think>``; the format has no place for thinking outside blocks).

    python examples/real_task_inputs.py --levels 4,8,12 --per-level 200 --output cot.jsonl --plain plain.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from memento.eval.benchmarks.problems import Problem
from memento.eval.benchmarks.prompts import build_prompt
from memento.tasks import ledger


def _plain_answer(cot: str) -> str:
    """The reasoning and the final answer of a ``<think>`` reasoning ``</think>`` answer chain of thought."""
    reasoning, _, answer = cot.removeprefix("<think>\n").partition("\n</think>\n\n")
    return f"{reasoning}\n\n{answer}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default=",".join(map(str, ledger.LEVELS)), help="difficulties, comma-separated")
    parser.add_argument("--per-level", type=int, default=200, help="training problems per difficulty")
    parser.add_argument("--output", type=Path, required=True, help="chains of thought (memento data build's input)")
    parser.add_argument("--plain", type=Path, help="also write the same problems as plain-CoT traces here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the order the records are written in")
    args = parser.parse_args()
    records = []
    for level in (int(part) for part in args.levels.split(",")):
        for index, problem in enumerate(ledger.problems(level, args.per_level, held_out=False)):
            task_id = f"ledger-{level}-train-{index}"
            prompt = build_prompt(Problem(id=task_id, problem=problem.text(), answer=str(problem.answer)))
            records.append(ledger.cot_record(problem, prompt, task_id=task_id))
    random.Random(args.seed).shuffle(records)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    print(f"{len(records)} chains of thought -> {args.output}")
    if args.plain:
        rows = [
            {
                "task_id": r["task_id"],
                "problem": r["problem"],
                "blocks": [],
                "mementos": [],
                "answer": _plain_answer(str(r["cot"])),
                "difficulty": r["difficulty"],
            }
            for r in records
        ]
        args.plain.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        print(f"{len(rows)} plain chain-of-thought traces -> {args.plain}")


if __name__ == "__main__":
    main()

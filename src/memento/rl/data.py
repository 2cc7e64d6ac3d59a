"""RL problems: the benchmarks `memento eval --benchmark` takes (names and local files), as TRL rows.

Problems are memento.eval's `Problem`s, read by memento.eval's sources; only the toy task is drawn
here, from a seed range of its own so that RL never trains on the held-out problems `memento eval
--benchmark toy` scores. A TRL dataset row is the prompt (memento.eval's user turn for the problem,
as `memento eval` asks it) and the problem's id; the rewards look the problem up by that id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memento.eval.benchmarks.problems import Benchmark, Problem
from memento.eval.benchmarks.prompts import build_prompt
from memento.eval.benchmarks.sources import load_benchmark
from memento.toy.task import ToyTask

RL_SEED = 2_000_003
"""Toy problems for RL are drawn from their own seed range (SFT data: 0, held-out: 1_000_003)."""
TOY_PROBLEMS = 1000
"""Toy problems drawn when no count is given."""
PROBLEM_ID = "problem_id"
"""Dataset column naming each row's problem (TRL hands it to the reward functions)."""


def toy_problems(count: int, *, task: ToyTask | None = None, seed: int = 0) -> list[Problem]:
    """`count` toy problems drawn with seed ``RL_SEED + seed`` (ids ``toy-rl-SEED-INDEX``)."""
    if count < 1:
        raise ValueError(f"the toy benchmark needs problems >= 1, got {count}")
    task = task or ToyTask()
    return [
        Problem(id=f"toy-rl-{seed}-{index}", problem=trace.prompt, answer=str(task.answer(numbers)), kind="toy")
        for index, (numbers, trace) in enumerate(task.examples(count, RL_SEED + seed))
    ]


def load_problems(benchmark: str, limit: int = 0, *, seed: int = 0, use_hub: bool = True) -> list[Problem]:
    """'toy' draws `limit` problems (0: `TOY_PROBLEMS`); any other name or file is memento.eval's
    `load_benchmark` (its first `limit` problems, 0 = all).

    Raises memento.eval's errors: `BenchmarkUnavailable`, `FileNotFoundError`, `BenchmarkFormatError`
    (a ValueError naming the file, row and field).
    """
    if limit < 0:
        raise ValueError(f"problems must be >= 0, got {limit}")
    if benchmark == "toy":
        return toy_problems(limit or TOY_PROBLEMS, seed=seed)
    return load_benchmark(benchmark, limit or None, use_hub=use_hub).problems


def dataset_rows(problems: Sequence[Problem]) -> list[dict[str, Any]]:
    """One TRL row per problem: ``prompt`` (the user turn memento.eval asks it with) and its id.

    Raises ValueError when two problems share an id (the rewards find problems by id).
    """
    Benchmark("rl", list(problems), "rl")  # refuses duplicate ids
    return [{"prompt": build_prompt(problem), PROBLEM_ID: problem.id} for problem in problems]

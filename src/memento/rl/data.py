"""RL prompts: the embedded toy task, or a JSONL file of ``{"prompt": ..., "answer": ...}`` lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from memento.toy.task import ToyTask

RL_SEED = 2_000_003
"""Toy problems for RL are drawn from their own seed range (SFT data: 0, held-out: 1_000_003)."""


def toy_problems(count: int, *, task: ToyTask | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """`count` toy problems as dataset rows (prompt, answer)."""
    task = task or ToyTask()
    return [
        {"prompt": trace.prompt, "answer": str(task.answer(numbers))}
        for numbers, trace in task.examples(count, RL_SEED + seed)
    ]


def file_problems(path: str | Path, limit: int = 0) -> list[dict[str, Any]]:
    """Rows of a JSONL file; each needs a 'prompt' (text or chat messages) and an 'answer'."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such benchmark file (or name: toy)")
    rows = []
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path} line {number}: not JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path} line {number}: expected a JSON object")
            for key in ("prompt", "answer"):
                if key not in row:
                    raise ValueError(f"{path} line {number}: missing field '{key}'")
            rows.append(row)
            if limit and len(rows) >= limit:
                break
    if not rows:
        raise ValueError(f"{path}: no problems")
    return rows


def load_problems(benchmark: str, count: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """'toy' draws `count` problems; anything else is read as a JSONL file (`count` 0 = all lines)."""
    if benchmark == "toy":
        if count < 1:
            raise ValueError("the toy benchmark needs problems >= 1")
        return toy_problems(count, seed=seed)
    return file_problems(benchmark, count)

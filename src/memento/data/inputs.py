"""The input of `memento data build`: a JSONL of chains of thought, checked whole before any work starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memento.format import TraceFormatError, read_jsonl
from memento.record_ids import IdLines, check_record_id


def read_traces(path: str | Path) -> Iterator[dict[str, Any]]:
    """Input records (`task_id`, `cot` with <think>...</think>, `problem`, `domain`), checked line by line.

    A `task_id` is any JSON string, number or boolean, kept and compared as given (default: ``line-N``);
    one used by two lines is refused naming both."""
    ids = IdLines(path, "task_id", TraceFormatError)
    for number, record in read_jsonl(path):
        where = f"{path}:{number}"
        if not isinstance(record, dict) or not isinstance(record.get("cot"), str):
            raise TraceFormatError("record lacks a string 'cot'", expected="task_id, cot, problem", source=where)
        record.setdefault("task_id", f"line-{number}")
        ids.add(check_record_id(record["task_id"], where, "task_id"), number)
        yield record


def thinking_and_answer(cot: str) -> tuple[str, str | None]:
    """(the thinking, the answer after </think> or None) of a chain of thought; a leading <think> is dropped."""
    body = cot.strip().removeprefix("<think>")
    if "</think>" in body:
        thinking, answer = body.split("</think>", 1)
        return thinking, answer.strip()
    return body, None

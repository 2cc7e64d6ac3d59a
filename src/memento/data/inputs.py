"""The input of `memento data build`: chains of thought, checked whole before any work starts.

A ``.jsonl`` file holds one record per line (`task_id`, `cot` with <think>...</think>, `problem`,
`domain`); a ``.json`` file holds one such record or a list of them (or is JSONL under that name).
The authors' memento traces (``problem`` + ``segments`` of blocks and summaries, as in their data
release) are accepted too: their blocks, joined, are the chain of thought, so the pipeline
re-annotates them with its own mementos.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memento import textfiles
from memento.format import TraceFormatError, read_jsonl, trace_from_segments
from memento.record_ids import IdLines, check_record_id


def read_traces(path: str | Path) -> Iterator[dict[str, Any]]:
    """Input records (`task_id`, `cot` with <think>...</think>, `problem`, `domain`), checked line by line.

    A `task_id` is any JSON string, number or boolean, kept and compared as given (default: ``line-N``);
    one used by two lines is refused naming both."""
    ids = IdLines(path, "task_id", TraceFormatError)
    for number, record in _records(path):
        where = f"{path}:{number}"
        if isinstance(record, dict) and "segments" in record and "cot" not in record:
            record = _from_memento_trace(record, where, default_id=f"{Path(path).stem}-{number}")
        if not isinstance(record, dict) or not isinstance(record.get("cot"), str):
            raise TraceFormatError("record lacks a string 'cot'", expected="task_id, cot, problem", source=where)
        record.setdefault("task_id", f"line-{number}")
        ids.add(check_record_id(record["task_id"], where, "task_id"), number)
        yield record


def _records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(record number, value): a JSONL line each, or the items of a ``.json`` file (one record or a list)."""
    if Path(path).suffix != ".json" or _one_value_per_line(Path(path)):
        yield from read_jsonl(path)
        return
    value = textfiles.read_json(path, error=TraceFormatError)
    yield from enumerate(value if isinstance(value, list) else [value], start=1)


def _one_value_per_line(path: Path) -> bool:
    """Whether a ``.json`` file is JSONL under that name (as many datasets ship it): its first non-blank line is a
    whole JSON value and another non-blank line follows. Reads only those lines."""
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                try:
                    json.loads(line)
                except ValueError:  # not JSON, or not UTF-8: a pretty-printed document (read_json says where)
                    return False
                return any(rest.strip() for rest in handle)
    return False


def _from_memento_trace(record: dict[str, Any], where: str, *, default_id: str) -> dict[str, Any]:
    """An input record from one of the authors' memento traces: its blocks, joined, are the chain of thought."""
    trace = trace_from_segments(record, source=where)
    thinking = "\n\n".join(block.reasoning.strip() for block in trace.blocks)
    cot = f"<think>\n{thinking}\n</think>" + (f"\n\n{trace.answer}" if trace.answer is not None else "")
    task_id = record.get("task_id", default_id)  # unique per file record: two traces may share a problem_source
    extra = {k: v for k, v in record.items() if k not in ("segments", "problem", "task_id")}
    return {**extra, "task_id": task_id, "problem": trace.prompt, "cot": cot}


def thinking_and_answer(cot: str) -> tuple[str, str | None]:
    """(the thinking, the answer after </think> or None) of a chain of thought; a leading <think> is dropped."""
    body = cot.strip().removeprefix("<think>")
    if "</think>" in body:
        thinking, answer = body.split("</think>", 1)
        return thinking, answer.strip()
    return body, None

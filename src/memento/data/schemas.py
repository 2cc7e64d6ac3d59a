"""The pipeline's JSON shapes: the answers it asks an LLM for (one schema per answer, which both asks and
checks) and the record it writes for each trace (`check_record`: `data export` checks every record with it).

Each `AnswerSchema` owns one answer's shape: its JSON schema (sent as OpenAI's
``response_format={"type": "json_schema", ...}`` with ``strict: true`` when the endpoint takes it,
so that a constrained decoder can only emit that shape) and the check of a parsed answer (always
run: an endpoint may ignore the schema). The schemas keep to the subset strict mode accepts
everywhere (OpenAI, vLLM's xgrammar / guidance, SGLang, llama.cpp's server): objects with every
property required and no others, `enum`, integer ranges, array lengths, and `maxLength` on the free
text, which bounds a small model's answer (an endpoint that refuses it falls back, see `llm`).
The checks do not enforce `maxLength`: an over-long memento an endpoint let through is kept
(and flagged by `memento data stats`).

- `boundary_scores(boundaries)`: a 0-3 score for each asked boundary between two sentences.
- `mementos(count, max_chars)`: one non-empty memento per block, in order, none longer than `max_chars`.
- `grades(count)`: the judge's 0-10 score and feedback for each block's memento.
- `check_record(record, where)`: one line of records.jsonl (`build.process_trace`'s output).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from memento.format import parse_text
from memento.json_shapes import ShapeError, check, check_fields, check_items

SCORE_RANGE = (0, 3)
"""Boundary scores: 0 = never cut here .. 3 = a clear unit of work ends here."""
GRADE_RANGE = (0, 10)
"""Judge scores."""
FEEDBACK_MAX_CHARS = 400
"""The judge's feedback on one memento is at most this long (a bound a constrained decoder enforces)."""


class MalformedAnswer(ValueError):
    """The model answered, but not with the JSON that was asked for."""


@dataclass(frozen=True)
class AnswerSchema:
    """One answer's JSON schema and its check: `parse(answer)` returns the value or raises MalformedAnswer."""

    name: str
    schema: dict[str, Any]
    parse: Callable[[dict[str, Any]], Any]

    def response_format(self) -> dict[str, Any]:
        """OpenAI's structured-output request for this answer (strict)."""
        return {"type": "json_schema", "json_schema": {"name": self.name, "schema": self.schema, "strict": True}}


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _array(items: dict[str, Any], count: int) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": count, "maxItems": count}


def boundary_scores(boundaries: Sequence[int]) -> AnswerSchema:
    """``{"scores": [{"boundary": K, "score": S}, ...]}``: S in 0-3 for each K in `boundaries` -> {K: S}."""
    expected = list(boundaries)
    low, high = SCORE_RANGE
    entry = _object(boundary={"type": "integer", "enum": expected}, score={"type": "integer", "enum": [0, 1, 2, 3]})

    def parse(answer: dict[str, Any]) -> dict[int, float]:
        entries = answer.get("scores")
        if not isinstance(entries, list):
            raise MalformedAnswer("missing 'scores' list")
        scores: dict[int, float] = {}
        for item in entries:
            if not isinstance(item, dict):
                raise MalformedAnswer(f"score entry is not an object: {item!r}")
            boundary, score = item.get("boundary"), item.get("score")
            if not isinstance(boundary, int) or not isinstance(score, (int, float)) or not low <= score <= high:
                raise MalformedAnswer(f"bad score entry {item!r}: expected integer boundary and score {low}-{high}")
            scores[boundary] = float(score)
        missing = [k for k in expected if k not in scores]
        if missing:
            raise MalformedAnswer(f"no score for boundaries {missing}")
        return {k: scores[k] for k in expected}

    return AnswerSchema("boundary_scores", _object(scores=_array(entry, len(expected))), parse)


def mementos(count: int, max_chars: int | None = None) -> AnswerSchema:
    """``{"mementos": ["...", ...]}``: exactly `count` non-empty strings -> the list, stripped.

    `max_chars`: the longest a memento may be (the pipeline passes its longest block's length: a
    memento longer than any block summarises nothing).
    """
    item: dict[str, Any] = {"type": "string"}
    if max_chars is not None:
        item["maxLength"] = max(int(max_chars), 1)

    def parse(answer: dict[str, Any]) -> list[str]:
        values = answer.get("mementos")
        if not isinstance(values, list) or not all(isinstance(m, str) and m.strip() for m in values):
            raise MalformedAnswer("expected 'mementos': a list of non-empty strings")
        if len(values) != count:
            raise MalformedAnswer(f"expected {count} mementos, got {len(values)}")
        return [m.strip() for m in values]

    return AnswerSchema("mementos", _object(mementos=_array(item, count)), parse)


def grades(count: int) -> AnswerSchema:
    """``{"grades": [{"block": B, "score": S, "feedback": "..."}, ...]}`` for blocks 1..count -> [(S, feedback)]."""
    low, high = GRADE_RANGE
    entry = _object(
        block={"type": "integer", "enum": list(range(1, count + 1))},
        score={"type": "integer", "minimum": low, "maximum": high},
        feedback={"type": "string", "maxLength": FEEDBACK_MAX_CHARS},
    )

    def parse(answer: dict[str, Any]) -> list[tuple[float, str]]:
        values = answer.get("grades")
        if not isinstance(values, list):
            raise MalformedAnswer("expected 'grades': a list")
        by_block: dict[int, tuple[float, str]] = {}
        for grade in values:
            if not isinstance(grade, dict) or not isinstance(grade.get("block"), int):
                raise MalformedAnswer(f"bad grade {grade!r}")
            score = grade.get("score")
            if not isinstance(score, (int, float)) or not low <= score <= high:
                raise MalformedAnswer(f"grade score must be {low}-{high}, got {score!r}")
            by_block[grade["block"]] = (float(score), str(grade.get("feedback", "")))
        missing = [b for b in range(1, count + 1) if b not in by_block]
        if missing:
            raise MalformedAnswer(f"no grade for blocks {missing}")
        return [by_block[b] for b in range(1, count + 1)]

    return AnswerSchema("grades", _object(grades=_array(entry, count)), parse)


RECORD = {
    "task_id": "string|integer|number|boolean",
    "problem": "string",
    "text": "string",
    "sentences": "list",
    "block_ranges": "list",
    "blocks": "list",
    "mementos": "list",
    "domain": "string|null",
    "source": "string|null",
    "answer": "string|null",
}
"""A record's fields and their JSON kinds (`build.process_trace` writes them all; `source` when the input had one)."""
RECORD_REQUIRED = ("task_id", "problem", "text", "sentences", "block_ranges", "blocks", "mementos")


def check_record(record: Any, where: str) -> dict[str, Any]:
    """`record` when it is a whole record of `memento data build`, else `ShapeError` (a ValueError) naming `where`
    (``FILE:LINE``) and the field: the kinds of `RECORD`; sentences, blocks and mementos lists of strings, each
    memento non-empty; one [first, last] sentence range per block, in order inside the sentences; one memento
    per block; and `text` the memento format of those blocks, each closed by its memento."""
    check_fields(record, RECORD, where, required=RECORD_REQUIRED)
    for field in ("sentences", "blocks", "mementos"):
        check_items(record[field], "string", where, field)
    ranges, blocks, mementos = record["block_ranges"], record["blocks"], record["mementos"]
    if len(blocks) != len(ranges) or len(mementos) != len(blocks):
        raise ShapeError(
            f"{where}: {len(blocks)} blocks, {len(ranges)} block_ranges and {len(mementos)} mementos: expected one "
            "range and one memento per block"
        )
    if not blocks:
        raise ShapeError(f"{where}: blocks: expected at least one block, got none")
    previous = -1
    for index, pair in enumerate(ranges):
        check(pair, "list", where, f"block_ranges[{index}]")
        if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
            raise ShapeError(f"{where}: block_ranges[{index}]: expected [first, last] sentence indices, got {pair!r}")
        first, last = pair
        if not previous < first <= last < len(record["sentences"]):
            raise ShapeError(
                f"{where}: block_ranges[{index}]: {pair} is not a range of sentences after {previous} and below "
                f"{len(record['sentences'])}"
            )
        previous = last
    for index, memento in enumerate(mementos):
        if not memento.strip():
            raise ShapeError(f"{where}: mementos[{index}]: empty, expected the block's memento")
    try:
        trace = parse_text(record["text"])
    except ValueError as error:
        raise ShapeError(f"{where}: text: {' '.join(str(error).split())}") from None
    unclosed = [i for i, block in enumerate(trace.blocks) if not (block.memento or "").strip()]
    if len(trace.blocks) != len(blocks) or unclosed:
        found = f"block {unclosed[0]} without a memento" if unclosed else f"{len(trace.blocks)} blocks"
        raise ShapeError(f"{where}: text: {found}, expected the record's {len(blocks)} blocks, each with its memento")
    return record

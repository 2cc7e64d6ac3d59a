"""The MEMENTO trace format: special tokens, the `Trace` model, parsing and rendering.

A trace is the assistant side of a conversation::

    <think>
    <|block_start|>reasoning<|block_end|>
    <|summary_start|>memento<|summary_end|>
    ...
    </think>

    final answer

The last block may lack a memento (the model went straight to ``</think>``), and a trace
cut off anywhere (mid-block, mid-memento, before ``</think>``) is a valid *open* trace:
inference streams look like that.

This module parses text and reads the file forms; it re-exports the marker strings
(`memento.markers`), the `Trace` model and its rendering (`memento.trace`) and `SpecialIds`
(`memento.special_ids`), so ``from memento.format import ...`` reaches all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memento import textfiles
from memento.markers import (
    ASSISTANT_HEADER,
    ASSISTANT_ROLE,
    BLOCK_END,
    BLOCK_START,
    IM_END,
    IM_START,
    MEMENTO_TOKENS,
    SUMMARY_END,
    SUMMARY_START,
    THINK_END,
    THINK_START,
)
from memento.special_ids import SpecialIds
from memento.trace import Block, TokenRole, Trace, TraceFormatError, render_assistant, render_chat

__all__ = [
    "ASSISTANT_HEADER",
    "ASSISTANT_ROLE",
    "BLOCK_END",
    "BLOCK_START",
    "IM_END",
    "IM_START",
    "MEMENTO_TOKENS",
    "SUMMARY_END",
    "SUMMARY_START",
    "THINK_END",
    "THINK_START",
    "Block",
    "SpecialIds",
    "TokenRole",
    "Trace",
    "TraceFormatError",
    "load_traces",
    "parse_text",
    "read_jsonl",
    "render_assistant",
    "render_chat",
    "split_on_markers",
    "trace_from_record_fields",
    "trace_from_segments",
    "trace_to_segments",
]


# ---------------------------------------------------------------------------------------------
# Parsing text

_MARKER_PATTERN = re.compile(
    "|".join(
        re.escape(m)
        for m in (
            BLOCK_START,
            BLOCK_END,
            SUMMARY_START,
            SUMMARY_END,
            THINK_START,
            THINK_END,
            IM_START,
            IM_END,
        )
    )
)
_MEMENTO_MARKERS = frozenset(MEMENTO_TOKENS)


def _assistant_region(text: str) -> tuple[str, int, str]:
    """Split a ChatML conversation into (user prompt, assistant start offset, assistant text).

    Text without ChatML markers is taken as a bare assistant turn with an empty prompt.
    """
    header = text.rfind(ASSISTANT_HEADER)
    if header < 0:
        if IM_START in text:
            raise TraceFormatError(
                "ChatML conversation without an assistant turn",
                offset=text.find(IM_START),
                expected=repr(ASSISTANT_HEADER),
            )
        return "", 0, text
    start = header + len(ASSISTANT_HEADER)
    if text.startswith("\n", start):
        start += 1
    prompt = ""
    user = text.rfind(f"{IM_START}user\n", 0, header)
    if user >= 0:
        user_start = user + len(f"{IM_START}user\n")
        user_end = text.find(IM_END, user_start, header)
        prompt = text[user_start : user_end if user_end >= 0 else header]
    body = text[start:]
    if body.endswith(f"{IM_END}\n"):
        body = body[: -len(IM_END) - 1]
    elif body.endswith(IM_END):
        body = body[: -len(IM_END)]
    return prompt, start, body


def parse_text(text: str, *, source: str | None = None) -> Trace:
    """Parse memento-format text into a `Trace`.

    Accepts a bare assistant turn (with or without the leading ``<think>``) or a whole ChatML
    conversation (the last assistant turn is parsed, the user turn becomes the prompt).
    Whitespace between segments is layout and is dropped; text inside blocks, mementos and the
    answer is kept exactly. Raises `TraceFormatError` naming the character offset in `text`.
    """
    prompt, base, body = _assistant_region(text)
    blocks: list[Block] = []
    state = "start"  # start | thinking | block | after_block | summary | answer
    reasoning: str | None = None
    cursor = 0  # end of the last marker in `body`

    def fail(message: str, at: int, expected: str) -> TraceFormatError:
        return TraceFormatError(message, offset=base + at, expected=expected, source=source)

    for match in _MARKER_PATTERN.finditer(body):
        marker, at = match.group(), match.start()
        between = body[cursor:at]
        if state in ("start", "thinking", "after_block") and between.strip():
            offset = cursor + len(between) - len(between.lstrip())
            raise fail("text outside any block", offset, _expected_in(state))
        if state == "answer":
            raise fail(f"{marker} after {THINK_END}", at, "plain answer text")
        if marker in (IM_START, IM_END):
            raise fail(f"{marker} inside the assistant turn", at, "memento markers or text")
        if marker == THINK_START:
            if state != "start":
                raise fail(f"second {THINK_START}", at, _expected_in(state))
            state = "thinking"
        elif marker == BLOCK_START:
            if state in ("start", "thinking"):
                state, reasoning = "block", None
            elif state == "block":
                raise fail("nested block", at, BLOCK_END)
            elif state == "after_block":
                raise fail("a block with no memento followed by another block", at, SUMMARY_START)
            else:
                raise fail(f"{BLOCK_START} inside a memento", at, SUMMARY_END)
        elif marker == BLOCK_END:
            if state != "block":
                raise fail(f"{BLOCK_END} without {BLOCK_START}", at, _expected_in(state))
            reasoning = body[cursor:at]
            state = "after_block"
        elif marker == SUMMARY_START:
            if state != "after_block":
                raise fail("memento with no block before it", at, _expected_in(state))
            state = "summary"
        elif marker == SUMMARY_END:
            if state != "summary":
                raise fail(f"{SUMMARY_END} without {SUMMARY_START}", at, _expected_in(state))
            assert reasoning is not None
            blocks.append(Block(reasoning, body[cursor:at]))
            reasoning, state = None, "thinking"
        elif marker == THINK_END:
            if state in ("block", "summary"):
                raise fail(f"{THINK_END} inside an open {state}", at, _expected_in(state))
            if state == "after_block":
                assert reasoning is not None
                blocks.append(Block(reasoning))  # the final block may go without a memento
            state = "answer"
        cursor = match.end()

    rest = body[cursor:]
    if state in ("start", "thinking", "after_block") and rest.strip():
        offset = cursor + len(rest) - len(rest.lstrip())
        raise fail("text outside any block", offset, _expected_in(state))
    answer: str | None = None
    if state == "answer":
        answer = rest[2:] if rest.startswith("\n\n") else rest.lstrip("\n")
    elif state == "block":
        blocks.append(Block(rest, reasoning_closed=False))
    elif state == "after_block":
        assert reasoning is not None
        blocks.append(Block(reasoning))
    elif state == "summary":
        assert reasoning is not None
        blocks.append(Block(reasoning, rest, memento_closed=False))
    return Trace(prompt=prompt, blocks=blocks, answer=answer)


def _expected_in(state: str) -> str:
    return {
        "start": f"{THINK_START} or {BLOCK_START}",
        "thinking": f"{BLOCK_START} or {THINK_END}",
        "block": BLOCK_END,
        "after_block": f"{SUMMARY_START} or {THINK_END}",
        "summary": SUMMARY_END,
        "answer": "plain answer text",
    }[state]


# ---------------------------------------------------------------------------------------------
# The authors' JSON form


def trace_from_segments(record: dict[str, Any], *, source: str | None = None) -> Trace:
    """Build a `Trace` from the authors' JSON form.

    `record` has `problem` and `segments`: ``{"type": "block", "text": ...}`` and
    ``{"type": "summary", "text": ...}`` alternating, optionally closed by one
    ``{"type": "answer", "text": ...}`` (the response after ``</think>``). Without an answer
    segment the trace is open. Other fields (e.g. the extracted final `answer`) go to
    `metadata`. Errors name the offending segment index.
    """
    segments = record.get("segments")
    if not isinstance(segments, list):
        raise TraceFormatError("missing 'segments' list", expected="a list of block/summary segments", source=source)
    blocks: list[Block] = []
    pending: str | None = None
    answer: str | None = None
    for index, segment in enumerate(segments):
        if not isinstance(segment, dict) or not isinstance(segment.get("text"), str):
            raise TraceFormatError(
                "segment is not an object with a string 'text'",
                segment=index,
                expected='{"type": ..., "text": ...}',
                source=source,
            )
        kind = segment.get("type")
        if answer is not None:
            raise TraceFormatError(
                f"segment of type {kind!r} after the answer", segment=index, expected="nothing", source=source
            )
        if kind == "block":
            if pending is not None:
                raise TraceFormatError(
                    "a block with no summary followed by another block",
                    segment=index,
                    expected="type 'summary'",
                    source=source,
                )
            pending = segment["text"]
        elif kind == "summary":
            if pending is None:
                raise TraceFormatError(
                    "summary with no block before it", segment=index, expected="type 'block'", source=source
                )
            blocks.append(Block(pending, segment["text"]))
            pending = None
        elif kind == "answer":
            if pending is not None:
                blocks.append(Block(pending))  # the final block may go without a memento
                pending = None
            answer = segment["text"]
        else:
            raise TraceFormatError(
                f"unknown segment type {kind!r}",
                segment=index,
                expected="'block', 'summary' or 'answer'",
                source=source,
            )
    if pending is not None:
        blocks.append(Block(pending))
    metadata = {k: v for k, v in record.items() if k not in ("problem", "segments")}
    return Trace(prompt=str(record.get("problem", "")), blocks=blocks, answer=answer, metadata=metadata)


def trace_to_segments(trace: Trace) -> dict[str, Any]:
    """The authors' JSON form of a trace with closed blocks; inverse of `trace_from_segments`."""
    segments: list[dict[str, Any]] = []
    for number, block in enumerate(trace.blocks, start=1):
        if not (block.reasoning_closed and block.memento_closed):
            raise ValueError("the segments form cannot hold a block cut off mid-reasoning or mid-memento")
        segments.append({"type": "block", "block_idx": number, "text": block.reasoning})
        if block.memento is not None:
            segments.append({"type": "summary", "block_idx": number, "text": block.memento})
    if trace.answer is not None:
        segments.append({"type": "answer", "block_idx": 0, "text": trace.answer})
    return {**trace.metadata, "problem": trace.prompt, "segments": segments}


def trace_from_record_fields(record: dict[str, Any], *, source: str | None = None) -> Trace:
    """A trace from the data pipeline's record: `problem`, `blocks`, `mementos` (one per block), `answer`."""
    blocks, mementos = record.get("blocks"), record.get("mementos")
    if not isinstance(blocks, list) or not all(isinstance(b, str) for b in blocks):
        raise TraceFormatError("'blocks' is not a list of strings", expected="blocks: [str, ...]", source=source)
    if not isinstance(mementos, list) or not all(isinstance(m, str) for m in mementos):
        raise TraceFormatError("'mementos' is not a list of strings", expected="mementos: [str, ...]", source=source)
    if len(mementos) != len(blocks):
        raise TraceFormatError(
            f"{len(blocks)} blocks but {len(mementos)} mementos", expected="one memento per block", source=source
        )
    answer = record.get("answer")
    metadata = {k: v for k, v in record.items() if k not in ("problem", "blocks", "mementos", "answer")}
    return Trace(
        prompt=str(record.get("problem", "")),
        blocks=[Block(b, m) for b, m in zip(blocks, mementos, strict=True)],
        answer=None if answer is None else str(answer),
        metadata=metadata,
    )


def read_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for every non-blank line (`memento.textfiles.read_jsonl`); a line that is not
    UTF-8 or not JSON raises `TraceFormatError` naming the file, line and byte offset."""
    return textfiles.read_jsonl(path, error=TraceFormatError)


def load_traces(path: str | Path) -> list[tuple[str, Trace]]:
    """Load named traces from a file.

    * ``.json``: one record in the authors' form (``segments``), the data pipeline's form
      (``blocks`` + ``mementos``), or ``{"text": ...}``.
    * ``.jsonl``: one such record per line (blank lines skipped); names get ``:LINE``.
    * anything else: memento-format text.
    """
    path = Path(path)
    name = path.name
    if path.suffix == ".jsonl":
        return [
            (f"{name}:{number}", _trace_from_record(record, f"{path}:{number}")) for number, record in read_jsonl(path)
        ]
    if path.suffix == ".json":
        return [(name, _trace_from_record(textfiles.read_json(path, error=TraceFormatError), str(path)))]
    return [(name, parse_text(textfiles.read_text(path, error=TraceFormatError), source=str(path)))]


def _trace_from_record(record: Any, source: str) -> Trace:
    if not isinstance(record, dict):
        raise TraceFormatError("record is not a JSON object", expected="an object", source=source)
    if "segments" in record:
        return trace_from_segments(record, source=source)
    if "blocks" in record:
        return trace_from_record_fields(record, source=source)
    if isinstance(record.get("text"), str):
        trace = parse_text(record["text"], source=source)
        if not trace.prompt and isinstance(record.get("problem"), str):
            trace.prompt = record["problem"]
        return trace
    raise TraceFormatError(
        "record has neither 'segments' nor 'text'",
        expected="'segments' (authors' form) or 'text'",
        source=source,
    )


def split_on_markers(text: str) -> Iterator[tuple[str, bool]]:
    """Split text into (piece, is_marker) in order; markers are the memento, think and ChatML tokens."""
    cursor = 0
    for match in _MARKER_PATTERN.finditer(text):
        if match.start() > cursor:
            yield text[cursor : match.start()], False
        yield match.group(), True
        cursor = match.end()
    if cursor < len(text):
        yield text[cursor:], False

"""Training data: traces -> ChatML conversations -> token ids with labels (prompt masked)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memento.attention import analyze, find_assistant_start
from memento.config import MementoConfig
from memento.format import ASSISTANT_HEADER, SpecialIds, Trace, render_chat
from memento.training.sources import DataSelection, read_traces

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TrainingExample:
    """One tokenized conversation; labels are -100 on the prompt (user turn and assistant header)."""

    name: str
    input_ids: list[int]
    labels: list[int]


@dataclass
class DatasetStats:
    examples: int = 0
    truncated: int = 0
    dropped: list[str] = field(default_factory=list)
    tokens: int = 0


def tokenize_trace(
    trace: Trace,
    tokenizer: Any,
    special_ids: SpecialIds,
    *,
    name: str = "",
    max_length: int = 32768,
    overflow: str = "truncate",
    system: str | None = None,
) -> tuple[TrainingExample | None, bool]:
    """Tokenize one trace as a ChatML conversation (no system prompt unless given).

    A conversation longer than `max_length` is cut after its last complete memento that fits
    (`overflow="truncate"`) or dropped (`"drop"`, or when no memento fits). Returns
    (example or None, whether it was truncated).
    """
    if overflow not in ("truncate", "drop"):
        raise ValueError(f"overflow must be 'truncate' or 'drop', got {overflow!r}")
    text = render_chat(trace, system=system)
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    prefix_end = text.index(ASSISTANT_HEADER) + len(ASSISTANT_HEADER) + 1  # through the header's newline
    prefix = list(tokenizer.encode(text[:prefix_end], add_special_tokens=False))
    prompt_length = len(prefix) if ids[: len(prefix)] == prefix else find_assistant_start(ids, special_ids)
    truncated = False
    if len(ids) > max_length:
        if overflow == "drop":
            return None, False
        layout = analyze(ids, special_ids, MementoConfig(mask_delimiters=False))
        ends = [b.summary_end for b in layout.blocks if b.summary_end is not None and b.summary_end < max_length]
        if not ends:
            return None, False
        ids, truncated = ids[: ends[-1] + 1], True
    if prompt_length >= len(ids):
        return None, False
    labels = [IGNORE_INDEX] * prompt_length + ids[prompt_length:]
    return TrainingExample(name, ids, labels), truncated


def load_examples(
    paths: Iterable[str | Path],
    tokenizer: Any,
    *,
    max_length: int = 32768,
    overflow: str = "truncate",
    system: str | None = None,
    selection: DataSelection | None = None,
) -> tuple[list[TrainingExample], DatasetStats]:
    """Read traces (authors' JSON, data-pipeline JSONL, memento text, OpenMementos rows) and tokenize them all.

    `selection` filters them (domain / source / difficulty) and caps their number; see `memento.training.sources`.
    """
    paths = list(paths)
    length = {"max_length": max_length, "overflow": overflow, "system": system}
    return tokenize_traces(read_traces(paths, selection), tokenizer, origin=str([str(p) for p in paths]), **length)


def tokenize_traces(
    traces: Iterable[tuple[str, Trace]],
    tokenizer: Any,
    *,
    max_length: int = 32768,
    overflow: str = "truncate",
    system: str | None = None,
    origin: str = "the data",
) -> tuple[list[TrainingExample], DatasetStats]:
    """Tokenize named traces already read (`memento.training.sources.read_traces`); `origin` names them in errors."""
    special_ids = SpecialIds.from_tokenizer(tokenizer)
    examples, stats = [], DatasetStats()
    for name, trace in traces:
        example, truncated = tokenize_trace(
            trace, tokenizer, special_ids, name=name, max_length=max_length, overflow=overflow, system=system
        )
        if example is None:
            stats.dropped.append(name)
            continue
        stats.truncated += truncated
        stats.tokens += len(example.input_ids)
        examples.append(example)
    stats.examples = len(examples)
    if not examples:
        raise ValueError(f"no training examples left from {origin} (dropped: {stats.dropped})")
    return examples, stats

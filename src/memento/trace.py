"""The `Trace` model (prompt, blocks with mementos, answer), its rendering, and the format's errors.

`memento.format` re-exports everything here and adds parsing and the file forms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from memento.markers import (
    ASSISTANT_HEADER,
    BLOCK_END,
    BLOCK_START,
    IM_END,
    IM_START,
    SUMMARY_END,
    SUMMARY_START,
    THINK_END,
    THINK_START,
)


class TokenRole(IntEnum):
    """What a token is in a memento sequence (computed by `memento.attention`)."""

    PROMPT = 0
    BLOCK_DELIMITER = 1
    BLOCK = 2
    SUMMARY_DELIMITER = 3
    SUMMARY = 4
    OTHER = 5


class TraceFormatError(ValueError):
    """A trace that breaks the format; says where (character offset or segment index) and what was expected."""

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        segment: int | None = None,
        expected: str | None = None,
        source: str | None = None,
    ) -> None:
        self.offset = offset
        self.segment = segment
        self.expected = expected
        self.source = source
        where = []
        if source:
            where.append(str(source))
        if offset is not None:
            where.append(f"offset {offset}")
        if segment is not None:
            where.append(f"segments[{segment}]")
        text = message if expected is None else f"{message}; expected {expected}"
        super().__init__(f"{': '.join(where)}: {text}" if where else text)


@dataclass(frozen=True)
class Block:
    """One reasoning block and its memento.

    `memento` is None while no ``<|summary_start|>`` has been written (an open trace, or the
    final block before ``</think>``). `reasoning_closed` / `memento_closed` are False only in an
    open trace cut off inside the block or inside its memento.
    """

    reasoning: str
    memento: str | None = None
    reasoning_closed: bool = True
    memento_closed: bool = True

    def __post_init__(self) -> None:
        if not self.reasoning_closed and self.memento is not None:
            raise ValueError("a block whose reasoning is still open cannot have a memento")
        if self.memento is None and not self.memento_closed:
            raise ValueError("memento_closed=False needs a memento (possibly empty)")


@dataclass
class Trace:
    """A MEMENTO reasoning trace: prompt, blocks with mementos, optional final answer.

    `answer` is None when ``</think>`` has not been written (an open trace); otherwise it is the
    text after it (possibly empty). `metadata` carries fields of the source file and is not
    compared.
    """

    prompt: str = ""
    blocks: list[Block] = field(default_factory=list)
    answer: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_open(self) -> bool:
        """True while the trace has not reached ``</think>``."""
        return self.answer is None

    def render(self) -> str:
        """The assistant text of this trace (no chat markup); `parse_text` inverts it."""
        return render_assistant(self)


# ---------------------------------------------------------------------------------------------
# Rendering


def render_assistant(trace: Trace) -> str:
    """Render the assistant turn: ``<think>`` + blocks and mementos + ``</think>`` + answer."""
    parts = [THINK_START, "\n"]
    for block in trace.blocks:
        parts.append(BLOCK_START + block.reasoning)
        if not block.reasoning_closed:
            break
        parts.append(BLOCK_END + "\n")
        if block.memento is None:
            continue
        parts.append(SUMMARY_START + block.memento)
        if not block.memento_closed:
            break
        parts.append(SUMMARY_END + "\n")
    if trace.answer is not None:
        parts.append(THINK_END + "\n\n" + trace.answer)
    return "".join(parts)


def render_chat(trace: Trace, *, system: str | None = None) -> str:
    """Render the trace as a ChatML conversation (no system prompt unless given, as for Qwen3).

    An open trace leaves the assistant turn unterminated, as a generation prompt would.
    """
    parts = []
    if system is not None:
        parts.append(f"{IM_START}system\n{system}{IM_END}\n")
    parts.append(f"{IM_START}user\n{trace.prompt}{IM_END}\n")
    parts.append(f"{ASSISTANT_HEADER}\n{render_assistant(trace)}")
    if not trace.is_open:
        parts.append(f"{IM_END}\n")
    return "".join(parts)

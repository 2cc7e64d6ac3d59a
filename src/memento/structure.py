"""The structure of a memento token stream: each token's role and block, and the structural events.

A tolerant state machine fed one token at a time; `memento.attention` builds the attention rule
(which blocks are hidden when) on it. Positions are logical indices into the full sequence.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from memento.config import MementoConfig
from memento.format import SpecialIds, TokenRole


@dataclass
class BlockSpan:
    """Where one block and its memento sit in a sequence (logical positions, inclusive).

    `end`, `summary_start`, `summary_end` stay None until written. `completed_index` counts
    blocks that have a closed memento, in order of completion; `hidden_after` (set by
    `analyze`) is the last position that still sees the block, None if it is never hidden.
    """

    index: int
    start: int
    end: int | None = None
    summary_start: int | None = None
    summary_end: int | None = None
    completed_index: int | None = None
    hidden_after: int | None = None

    def masked_range(self, config: MementoConfig) -> range:
        """Key positions hidden once the block is evicted: the content, plus the delimiters when
        `mask_delimiters` (or restart_mode). Empty while the block is open."""
        if self.end is None:
            return range(0)
        if config.hides_delimiters:
            return range(self.start, self.end + 1)
        return range(self.start + 1, self.end)

    @property
    def summary_range(self) -> range:
        """Positions of the memento including its delimiters; empty until it is closed."""
        if self.summary_start is None or self.summary_end is None:
            return range(0)
        return range(self.summary_start, self.summary_end + 1)


class _State(Enum):
    OUTSIDE = "outside"  # thinking, between blocks
    IN_BLOCK = "in_block"
    AFTER_BLOCK = "after_block"  # block closed, memento not started
    IN_SUMMARY = "in_summary"


class StructuralEvent(Enum):
    BLOCK_START = "block_start"
    BLOCK_END = "block_end"
    SUMMARY_START = "summary_start"
    SUMMARY_END = "summary_end"


class Structure:
    """Tolerant structural parse of a token stream: roles, blocks, and structural events.

    With `require_assistant_section`, tokens inside a non-assistant ChatML turn (from an
    ``<|im_start|>`` until an ``<|im_start|>assistant`` header completes) are prompt; the
    `assistant_start` override replaces that with a fixed position.

    ``</think>`` is not special: blocks after it (a later turn of a multi-turn chat) are tracked
    like the first turn's, as the authors' tracker does.

    Generated text can be malformed; rather than fail, a marker that does not fit the current
    state is ordinary text of that state (a ``<|block_start|>`` inside a block is block content,
    a ``<|summary_start|>`` outside any block is other text). A block closed without a memento
    is never evicted.
    """

    def __init__(self, special_ids: SpecialIds, config: MementoConfig, assistant_start: int | None) -> None:
        self.ids = special_ids
        self.position = 0
        self.blocks: list[BlockSpan] = []
        self.num_completed = 0
        self._state = _State.OUTSIDE
        self._assistant_start = assistant_start
        self._header = special_ids.assistant_header if config.require_assistant_section else None
        self._recent: deque[int] = deque(maxlen=len(self._header) if self._header else 1)
        # A token is prompt only inside a non-assistant ChatML turn: after an <|im_start|> and before
        # an <|im_start|>assistant header completes. Text with no ChatML markup is assistant text.
        self.in_assistant = assistant_start is None or assistant_start <= 0
        # The ids `feed` reacts to; any other token at most moves the position (see `skip`).
        markers = (*special_ids.memento_ids, special_ids.im_start)
        self.markers = frozenset(marker for marker in markers if marker is not None)

    @property
    def open_block(self) -> BlockSpan | None:
        return self.blocks[-1] if self._state is _State.IN_BLOCK else None

    def feed(self, token_id: int) -> tuple[TokenRole, int, StructuralEvent | None]:
        """Consume one token; return (role, block index or -1, structural event or None)."""
        position = self.position
        self.position += 1
        if self._assistant_start is not None:
            self.in_assistant = position >= self._assistant_start
        elif self._header is not None:
            if token_id == self.ids.im_start:
                self.in_assistant = False
                self._state = _State.OUTSIDE
            self._recent.append(token_id)
            if not self.in_assistant:
                if tuple(self._recent) == self._header:
                    self.in_assistant = True  # from the next token on
                return TokenRole.PROMPT, -1, None
        if not self.in_assistant:
            return TokenRole.PROMPT, -1, None
        return self._transition(token_id, position)

    def skip(self, token_ids: Sequence[int]) -> bool:
        """Consume `token_ids`, none of them in `markers`, as `feed` would one by one, in O(1): True. Where such a
        token may still change the state (in a non-assistant turn, while the assistant header is awaited),
        nothing is consumed: False (feed them one by one)."""
        count = len(token_ids)
        if self._assistant_start is not None:
            self.position += count
            self.in_assistant = self.position - 1 >= self._assistant_start
            return True
        if self._header is not None:
            if not self.in_assistant:
                return False
            self._recent.extend(token_ids[-len(self._header) :])
        self.position += count
        return True

    def _transition(self, token_id: int, position: int) -> tuple[TokenRole, int, StructuralEvent | None]:
        ids, state = self.ids, self._state
        current = self.blocks[-1].index if self.blocks else -1
        if state is _State.IN_BLOCK:
            if token_id == ids.block_end:
                self.blocks[-1].end = position
                self._state = _State.AFTER_BLOCK
                return TokenRole.BLOCK_DELIMITER, current, StructuralEvent.BLOCK_END
            return TokenRole.BLOCK, current, None
        if state is _State.IN_SUMMARY:
            if token_id == ids.summary_end:
                block = self.blocks[-1]
                block.summary_end = position
                block.completed_index = self.num_completed
                self.num_completed += 1
                self._state = _State.OUTSIDE
                return TokenRole.SUMMARY_DELIMITER, current, StructuralEvent.SUMMARY_END
            return TokenRole.SUMMARY, current, None
        # OUTSIDE or AFTER_BLOCK
        if token_id == ids.block_start:
            self.blocks.append(BlockSpan(index=len(self.blocks), start=position))
            self._state = _State.IN_BLOCK
            return TokenRole.BLOCK_DELIMITER, len(self.blocks) - 1, StructuralEvent.BLOCK_START
        if state is _State.AFTER_BLOCK and token_id == ids.summary_start:
            self.blocks[-1].summary_start = position
            self._state = _State.IN_SUMMARY
            return TokenRole.SUMMARY_DELIMITER, current, StructuralEvent.SUMMARY_START
        return TokenRole.OTHER, -1, None

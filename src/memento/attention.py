"""The memento attention rule: which key positions each query position may see.

The rule: a token at position q may attend to key k <= q unless k lies in the masked range of a
block hidden at q. With N = keep_last_n_blocks, block j (in order of completion) is hidden from
every token after the ``<|summary_end|>`` of block j+N; the ``<|summary_end|>`` itself still sees
it. The masked range is the block's content, plus its delimiters with `mask_delimiters`. Position
ids are never renumbered. This module is the single owner of the rule: training masks, the
evicting KV cache, the KV simulator and the server all ask it rather than re-deriving it.

Two views of the same rule:

* `analyze` / `visibility_mask`: declarative, over a whole sequence. Block j is hidden from
  every token after the ``<|summary_end|>`` of completed block j+N (N = keep_last_n_blocks);
  this is the reference everything is tested against.
* `BlockTracker`: operational, fed one token at a time, it says which spans to evict *now*
  (after the token's KV has been written, before the next token). Property tests hold it
  against `visibility_mask`.

Both share `memento.structure.Structure`, the tolerant state machine that assigns each token its
role and block.
Positions are logical indices into the full sequence (what RoPE sees), never physical slots.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

from memento.config import MementoConfig
from memento.format import SpecialIds, TokenRole
from memento.structure import BlockSpan, StructuralEvent, Structure

__all__ = [
    "BlockSpan",
    "BlockTracker",
    "EvictedSpan",
    "SequenceLayout",
    "TrackerStep",
    "analyze",
    "find_assistant_start",
    "key_hidden_from",
    "visibility_mask",
]


# ---------------------------------------------------------------------------------------------
# Declarative view


@dataclass
class SequenceLayout:
    """The memento structure of a whole sequence.

    Attributes:
        roles: [L] role of each token.
        block_ids: [L] block index of each block/summary token (delimiters included), else -1.
        blocks: every block in order of its ``<|block_start|>``, with `hidden_after` filled in.
        assistant_start: first position of the (last) assistant turn; 0 when none is marked.
    """

    roles: list[TokenRole]
    block_ids: list[int]
    blocks: list[BlockSpan]
    assistant_start: int
    config: MementoConfig

    def hidden_query_start(self, block: BlockSpan) -> int | None:
        """First query position that may not see `block`'s masked range (None: never hidden).

        Equals ``hidden_after + 1``, except in restart_mode, where the memento's own KV is
        recomputed without its block: there the memento tokens are already blind to it.
        """
        if block.hidden_after is None:
            return None
        if self.config.restart_mode:
            assert block.summary_start is not None
            return block.summary_start
        return block.hidden_after + 1


def find_assistant_start(token_ids: Sequence[int], special_ids: SpecialIds) -> int:
    """Position right after the last ``<|im_start|>assistant`` header, or 0 if there is none."""
    header = special_ids.assistant_header
    if not header:
        return 0
    ids = list(token_ids)
    width = len(header)
    for start in range(len(ids) - width, -1, -1):
        if tuple(ids[start : start + width]) == header:
            return start + width
    return 0


def analyze(
    token_ids: Sequence[int] | torch.Tensor,
    special_ids: SpecialIds,
    config: MementoConfig,
    *,
    assistant_start: int | None = None,
) -> SequenceLayout:
    """Roles, blocks and the eviction point of every block for a whole sequence.

    `assistant_start` overrides where the assistant turn begins (otherwise it is found from the
    assistant header when `require_assistant_section` is set). Block j (in order of completion)
    is hidden after the ``<|summary_end|>`` of block j+N; with `keep_last_block_for_answer`, not
    before the next ``<|block_start|>`` either (never if ``</think>`` or the end comes first).
    """
    ids = _as_list(token_ids)
    structure = Structure(special_ids, config, assistant_start)
    roles, block_ids = [], []
    for token_id in ids:
        role, block_index, _ = structure.feed(token_id)
        roles.append(role)
        block_ids.append(block_index)
    blocks = structure.blocks
    completed = sorted((b for b in blocks if b.completed_index is not None), key=lambda b: b.completed_index)
    if config.evicts:
        starts = sorted(b.start for b in blocks)
        for block in completed:
            assert block.completed_index is not None and block.summary_end is not None
            trigger_index = block.completed_index + config.keep_last_n_blocks
            if trigger_index >= len(completed):
                continue
            hidden_after = completed[trigger_index].summary_end
            if config.keep_last_block_for_answer:
                later_starts = [s for s in starts if s > block.summary_end]
                if not later_starts:
                    continue
                hidden_after = max(hidden_after, later_starts[0])
            block.hidden_after = hidden_after
    if assistant_start is None:
        assistant_start = find_assistant_start(ids, special_ids)
    return SequenceLayout(roles, block_ids, blocks, assistant_start, config)


def visibility_mask(
    token_ids: Sequence[int] | torch.Tensor,
    special_ids: SpecialIds,
    config: MementoConfig,
    *,
    assistant_start: int | None = None,
) -> torch.Tensor:
    """Dense memento-attention mask, the reference for training, inference and the simulator.

    Args:
        token_ids: [L] token ids (list, tuple or 1-D tensor).
        special_ids: ids of the memento markers in this vocabulary.
        config: the memento options.
        assistant_start: optional override of where the assistant turn begins.

    Returns:
        BoolTensor [L, L]; True where query row q may attend key column k (always k <= q).
        In restart_mode the rows of each memento are those of its recomputed KV (block hidden).
    """
    layout = analyze(token_ids, special_ids, config, assistant_start=assistant_start)
    length = len(layout.roles)
    mask = torch.ones(length, length, dtype=torch.bool).tril_()
    for block in layout.blocks:
        first_blind_query = layout.hidden_query_start(block)
        masked = block.masked_range(config)
        if first_blind_query is not None and len(masked):
            mask[first_blind_query:, masked.start : masked.stop] = False
    return mask


def key_hidden_from(
    token_ids: Sequence[int] | torch.Tensor,
    special_ids: SpecialIds,
    config: MementoConfig,
    *,
    assistant_start: int | None = None,
) -> torch.Tensor:
    """The rule in O(L): for each key position k, the first query position that may not see it.

    Query q sees key k iff ``k <= q < hidden_from[k]``; keys never hidden get L. This compact form
    is what training masks (dense or block-sparse) are built from. Not defined for restart_mode,
    whose mementos have two KV streams.

    Returns:
        LongTensor [L].
    """
    if config.restart_mode:
        raise ValueError(
            "restart_mode has two KV streams per memento; it is an inference ablation, not a training mask"
        )
    layout = analyze(token_ids, special_ids, config, assistant_start=assistant_start)
    length = len(layout.roles)
    hidden_from = torch.full((length,), length, dtype=torch.long)
    for block in layout.blocks:
        first_blind_query = layout.hidden_query_start(block)
        masked = block.masked_range(config)
        if first_blind_query is not None and len(masked):
            hidden_from[masked.start : masked.stop] = first_blind_query
    return hidden_from


# ---------------------------------------------------------------------------------------------
# Operational view


@dataclass(frozen=True)
class EvictedSpan:
    """A span of logical positions [start, stop) to drop from the cache, and the block it held."""

    block_index: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start

    def positions(self) -> range:
        return range(self.start, self.stop)


@dataclass(frozen=True)
class TrackerStep:
    """What one token did.

    `evicted`: spans to remove now (after this token's KV was written, before the next token).
    `recompute`: restart_mode only, the memento positions whose KV must be recomputed without
    the evicted block (in order), else empty.
    """

    position: int
    role: TokenRole
    block_index: int
    evicted: tuple[EvictedSpan, ...] = ()
    recompute: range = field(default_factory=lambda: range(0))


_NOTHING_TO_RECOMPUTE = range(0)


class BlockTracker:
    """Per-sequence incremental tracker: fed one token at a time, reports what to evict now.

    One instance follows one sequence (a row of a batch). Feed every token in order, prompt
    included; each step's `evicted` spans must leave the cache before the next token runs.
    """

    def __init__(self, special_ids: SpecialIds, config: MementoConfig, *, assistant_start: int | None = None) -> None:
        self.special_ids = special_ids
        self.config = config
        self._structure = Structure(special_ids, config, assistant_start)
        self._awaiting_eviction: deque[BlockSpan] = deque()  # completed, still visible by the N rule
        self._deferred: list[BlockSpan] = []  # keep_last_block_for_answer: waiting for a next block
        self.evicted_spans: list[EvictedSpan] = []

    @property
    def position(self) -> int:
        """Logical position the next token will take."""
        return self._structure.position

    @property
    def blocks(self) -> list[BlockSpan]:
        """Blocks seen so far (hidden_after is not filled in by the tracker)."""
        return self._structure.blocks

    @property
    def in_block(self) -> bool:
        """True while a block's reasoning is being written."""
        return self._structure.open_block is not None

    @property
    def open_block_tokens(self) -> int:
        """Reasoning tokens written so far in the open block (0 outside a block)."""
        block = self._structure.open_block
        return 0 if block is None else self._structure.position - block.start - 1

    def feed(self, token_id: int) -> TrackerStep:
        """Consume the next token (its KV is being written at `position`)."""
        position = self._structure.position
        role, block_index, event = self._structure.feed(int(token_id))
        if event is None:  # most tokens: nothing to evict (the serving engines feed every token of every step)
            return TrackerStep(position, role, block_index, (), _NOTHING_TO_RECOMPUTE)
        to_evict: list[BlockSpan] = []
        if event is StructuralEvent.BLOCK_START and self._deferred:
            to_evict, self._deferred = self._deferred, []
        elif event is StructuralEvent.SUMMARY_END and self.config.evicts:
            self._awaiting_eviction.append(self._structure.blocks[block_index])
            while len(self._awaiting_eviction) > self.config.keep_last_n_blocks:
                block = self._awaiting_eviction.popleft()
                assert block.summary_end is not None
                if self.config.keep_last_block_for_answer and not any(b.start > block.summary_end for b in self.blocks):
                    self._deferred.append(block)
                else:
                    to_evict.append(block)
        evicted = []
        recompute = range(0)
        for block in to_evict:
            masked = block.masked_range(self.config)
            if len(masked):
                evicted.append(EvictedSpan(block.index, masked.start, masked.stop))
            if self.config.restart_mode:
                recompute = block.summary_range
        self.evicted_spans.extend(evicted)
        return TrackerStep(position, role, block_index, tuple(evicted), recompute)

    @property
    def markers(self) -> frozenset[int]:
        """The token ids that can change what the tracker does; any other token only takes a position."""
        return self._structure.markers

    def skip(self, token_ids: Sequence[int]) -> bool:
        """Feed `token_ids`, none of them in `markers` (so none evicts anything), in O(1): True; False when they
        must be fed one by one instead (still in a prompt whose assistant header is awaited), nothing consumed."""
        return self._structure.skip(token_ids)

    def feed_many(self, token_ids: Iterable[int]) -> list[TrackerStep]:
        """Feed several tokens; one `TrackerStep` each."""
        return [self.feed(int(token_id)) for token_id in token_ids]


def _as_list(token_ids: Sequence[int] | torch.Tensor) -> list[int]:
    if isinstance(token_ids, torch.Tensor):
        if token_ids.dim() == 2 and token_ids.shape[0] == 1:
            token_ids = token_ids[0]
        if token_ids.dim() != 1:
            raise ValueError(f"token_ids must be 1-D (or [1, L]), got shape {tuple(token_ids.shape)}")
        return token_ids.tolist()
    return [int(t) for t in token_ids]

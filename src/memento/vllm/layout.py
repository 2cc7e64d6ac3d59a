"""Where a request's live KV lies in its vLLM blocks once evicted spans are compacted away.

vLLM addresses a request's KV by logical position: block-table entry i holds positions
[i * block_size, (i + 1) * block_size). With eviction we keep positions logical for RoPE but
store the live tokens (those no later query has lost) packed in logical order: physical index p
lies in the p-th slot of the request's *real* entries (the ones not given back), in table order.
An evicted span is removed by moving the tokens after it down, and the entries that then hold
nothing are given back to vLLM's pool. vLLM's attention kernel then runs unchanged on the
physical block table and lengths: after compaction every key a decode query may see is exactly
the packed prefix, so causal attention over it is the memento rule.

Both the scheduler (which gives entries back) and the worker (which moves K/V and writes new
tokens) keep a `PhysicalLayout` per request and drive it with the same inputs at the same step
(the request's computed-token count before the step and the spans the rule closed), so they
agree on every entry without a channel between them. Pure Python: no vLLM import.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from memento.attention import EvictedSpan


@dataclass(frozen=True)
class StepPlan:
    """What one step changes: K/V moves (old physical index -> new) and entries given back."""

    moves: Sequence[tuple[int, int]] = ()
    released_entries: Sequence[int] = ()


UNCHANGED = StepPlan()
"""The plan of a step that moves nothing and gives nothing back (most steps)."""


@dataclass
class PhysicalLayout:
    """One request's packed KV: live logical positions in physical order, entries given back.

    positions: logical position of physical slot p (increasing: compaction keeps the order).
    released: block-table entries given back to the pool (vLLM's null block in the scheduler).
    """

    block_size: int
    positions: list[int] = field(default_factory=list)
    released: set[int] = field(default_factory=set)
    processed: int = 0
    written: int = 0
    spans_applied: int = 0
    _held: list[int] = field(default_factory=list)  # real entries below `_scanned`, in order
    _scanned: int = 0  # entries [0, _scanned) are sorted into `_held` / `released`
    _rewound: tuple[int, int] = (0, 0)  # (live slots, processed) before the last rewind: slots kept until then

    def begin_step(self, processed: int, closed_spans: list[tuple[int, EvictedSpan]]) -> StepPlan:
        """Bring the layout to the start of a step that runs after `processed` tokens have been computed.

        Spans closed by a token before `processed` (whose own forward has run) are removed; then
        the entries wholly before the logical write position that no longer hold live tokens are
        given back. Idempotent for the same `processed`. `processed` 0 after more means the request
        was preempted and is recomputed from its start: the layout restarts. Any other smaller
        `processed` is a restart_mode rewind to a memento's start: the tokens from there on are
        forgotten (they are computed again), evicted spans and entries given back stay so.
        """
        if processed == 0 < self.processed:
            self.reset()
        elif processed < self.processed:
            self._rewound = (len(self.positions), self.processed)
            del self.positions[bisect.bisect_left(self.positions, processed) :]
            self.processed = self.written = processed
            return UNCHANGED
        if self.written > processed:  # the same step built again: forget its placed tokens
            del self.positions[bisect.bisect_left(self.positions, processed) :]
            self.written = processed
        elif self.written < processed:
            self.positions.extend(range(self.written, processed))
        crossed = processed // self.block_size != self.processed // self.block_size
        self.processed = self.written = processed
        due = self.spans_applied
        if due < len(closed_spans) and closed_spans[due][0] < processed:
            moves = self._apply_evictions(closed_spans, processed)
        elif not crossed:
            return UNCHANGED
        else:
            moves = []
        return StepPlan(moves, self._release_surplus(processed))

    def reset(self) -> None:
        """Forget the layout: the request lost its blocks (preempted) and is recomputed from its start."""
        self.positions, self.released, self._held = [], set(), []
        self.processed = self.written = self.spans_applied = self._scanned = 0
        self._rewound = (0, 0)

    def _apply_evictions(self, closed_spans: list[tuple[int, EvictedSpan]], processed: int) -> list[tuple[int, int]]:
        """Remove the spans now due (at least one); the (old, new) physical index of every token that moves.

        Cost: O(log live) per span plus the moved tokens (slices of `positions`, no per-token Python).
        """
        due = self.spans_applied
        while due < len(closed_spans) and closed_spans[due][0] < processed:
            due += 1
        spans = sorted((span.start, span.stop) for _, span in closed_spans[self.spans_applied : due])
        self.spans_applied = due
        positions = self.positions
        cuts = []  # [lo, hi) index ranges of `positions` inside a span, in order, disjoint
        for start, stop in spans:
            lo, hi = bisect.bisect_left(positions, start), bisect.bisect_left(positions, stop)
            if cuts and lo <= cuts[-1][1]:
                cuts[-1] = (cuts[-1][0], max(hi, cuts[-1][1]))
            elif lo < hi:
                cuts.append((lo, hi))
        if not cuts:
            return []
        moves: list[tuple[int, int]] = []
        kept = positions[: cuts[0][0]]
        for index, (_, hi) in enumerate(cuts):
            stop = cuts[index + 1][0] if index + 1 < len(cuts) else len(positions)
            moves.extend(zip(range(hi, stop), range(len(kept), len(kept) + stop - hi), strict=True))
            kept += positions[hi:stop]
        self.positions = kept
        return moves

    def _release_surplus(self, processed: int) -> list[int]:
        """Entries wholly before the write position beyond the first ceil(live / block_size) real ones.

        Run only when spans were removed or the write position entered a new entry, the only
        times a surplus can appear (the scheduler and the worker must run it alike). After a rewind,
        the slots the recomputed tokens will take again are kept until the request is back where it was.
        Cost: O(entries released + entries the write position passed since the last call).
        """
        live = len(self.positions)
        if processed < self._rewound[1]:
            live = max(live, self._rewound[0])
        needed = -(-live // self.block_size)
        frontier = processed // self.block_size
        if frontier >= self._scanned:
            self._held.extend(entry for entry in range(self._scanned, frontier) if entry not in self.released)
        else:  # rewound: entries past the write position are sorted again when it passes them
            del self._held[bisect.bisect_left(self._held, frontier) :]
        self._scanned = frontier
        released = self._held[needed:]
        if released:
            del self._held[needed:]
            self.released.update(released)
        return released

    def place(self, count: int) -> int:
        """Append the step's `count` new tokens (logical processed..processed+count-1); their first physical index."""
        start = len(self.positions)
        self.positions.extend(range(self.processed, self.processed + count))
        self.written = self.processed + count
        return start

    def real_entries(self, num_entries: int) -> list[int]:
        """Table entries [0, num_entries) still held, in order: physical slot p is in entry [p // block_size].

        O(num_entries): the reference the worker's incrementally kept rows (`memento.vllm.packed`) are tested against.
        """
        return [entry for entry in range(num_entries) if entry not in self.released]

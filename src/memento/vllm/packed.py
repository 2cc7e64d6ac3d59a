"""Each masked request's packed block-table row, kept up to date as it changes instead of rebuilt every step.

A request's packed row lists the block ids of its real table entries (those not given back, see
`memento.vllm.layout`) in table order: physical slot p lies in block ``blocks[p // block_size]``.
It changes only when the request's logical row grows (a new block: append), when entries are
given back (splice them out; they lie near the row's end, where the tokens moved down from) and
when the request restarts from its first token (preempted: cleared). The host keeps each row as
lists; a device table ``[rows, width]`` (the block table's device and width, NULL_BLOCK_ID past
each row's end) mirrors them, refreshed by one indexed assignment per step over the cells that
changed (`flush`). The step's packed block-table rows and slots are then gathered from that table
on the device (`memento.vllm.rewrite`): no per-step host work grows with the context.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
import torch

NULL_BLOCK_ID = 0
"""vLLM's null block (`vllm.v1.attention.backends.utils.NULL_BLOCK_ID`): never allocated, safe to point at."""


@dataclass
class PackedRow:
    """One request's packed row. index: its row in the device table; entries: the logical table entries
    it holds, in order; blocks: their block ids; known: logical entries read so far ([0, known))."""

    index: int
    entries: list[int] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)
    known: int = 0


class PackedRows:
    """The worker's packed rows by request id, mirrored in a device table (one row each)."""

    def __init__(self) -> None:
        self.rows: dict[str, PackedRow] = {}
        self.table: torch.Tensor | None = None  # [rows, width] int32, allocated at the first `device_table`
        self._by_index: list[PackedRow | None] = []
        self._free: list[int] = []
        self._dirty: dict[int, tuple[int, int]] = {}  # device row -> [lo, hi) columns to refresh from the host

    def row(self, request_id: str) -> PackedRow:
        """The request's row, created empty on first sight."""
        row = self.rows.get(request_id)
        if row is None:
            index = self._free.pop() if self._free else len(self._by_index)
            row = PackedRow(index)
            if index == len(self._by_index):
                self._by_index.append(row)
            else:
                self._by_index[index] = row
            self.rows[request_id] = row
        return row

    def drop(self, request_ids: list[str]) -> None:
        """Forget finished requests; their device rows go back to NULL_BLOCK_ID and are reused."""
        for request_id in request_ids:
            row = self.rows.pop(request_id, None)
            if row is not None:
                self._mark(row.index, 0, len(row.blocks))
                self._by_index[row.index] = None
                self._free.append(row.index)

    def reset(self, row: PackedRow) -> None:
        """The request restarts from its first token (preempted and recomputed): its logical row is new."""
        self._mark(row.index, 0, len(row.blocks))
        row.entries, row.blocks, row.known = [], [], 0

    def sync(self, row: PackedRow, logical: np.ndarray, width: int, released: set[int]) -> None:
        """Bring `row` to the logical entries [0, width) of `logical` (the request's logical block-table row).

        Reads only entries not read before (width grows by one per block_size tokens). A smaller
        width (a restart_mode rewind) drops the entries past it; `released` (the layout's entries
        given back) keeps a rewound-past entry out when the row grows over it again.
        """
        if width == row.known:
            return
        if width < row.known:
            count = bisect.bisect_left(row.entries, width)
            self._mark(row.index, count, len(row.blocks))
            del row.entries[count:], row.blocks[count:]
        else:
            new = [entry for entry in range(row.known, width) if entry not in released]
            values = logical[row.known : width].tolist()
            self._mark(row.index, len(row.blocks), len(row.blocks) + len(new))
            row.blocks.extend(values[entry - row.known] for entry in new)
            row.entries.extend(new)
        row.known = width

    def release(self, row: PackedRow, entries: list[int]) -> None:
        """Splice entries given back out of `row` (each must be held)."""
        first = len(row.blocks)
        for entry in sorted(entries, reverse=True):
            index = bisect.bisect_left(row.entries, entry)
            if index == len(row.entries) or row.entries[index] != entry:
                raise RuntimeError(f"memento: block-table entry {entry} given back twice or never held")
            del row.entries[index], row.blocks[index]
            first = index
        self._mark(row.index, first, len(row.blocks) + len(entries))

    def _mark(self, index: int, lo: int, hi: int) -> None:
        if lo >= hi:
            return
        if index in self._dirty:
            old_lo, old_hi = self._dirty[index]
            lo, hi = min(lo, old_lo), max(hi, old_hi)
        self._dirty[index] = (lo, hi)

    def device_table(self, like: torch.Tensor) -> torch.Tensor:
        """The device table on `like`'s device, with its dtype and width (the block table's), holding every row.

        Grown (doubling) as requests arrive; rebuilt from the host rows if the block table changed geometry.
        """
        rows = max(len(self._by_index), like.shape[0])
        table = self.table
        if table is not None and (table.shape[1], table.dtype, table.device) == (
            like.shape[1],
            like.dtype,
            like.device,
        ):
            if table.shape[0] >= rows:
                return table
            grown = torch.full((max(rows, 2 * table.shape[0]), like.shape[1]), NULL_BLOCK_ID, dtype=like.dtype)
            grown = grown.to(like.device)
            grown[: table.shape[0]] = table
        else:
            grown = torch.full((rows, like.shape[1]), NULL_BLOCK_ID, dtype=like.dtype).to(like.device)
            for row in self.rows.values():  # every row goes up again
                self._mark(row.index, 0, len(row.blocks))
        self.table = grown
        return grown

    def flush(self, width: int) -> np.ndarray:
        """The cells changed since the last flush, as int64 [3, cells] (device row, column, block id), host values.

        Each cell appears once (one indexed assignment may not write a cell twice). Raises when a row
        is wider than `width` (the block table's).
        """
        rows: list[int] = []
        columns: list[int] = []
        values: list[int] = []
        for index, (lo, hi) in self._dirty.items():
            row = self._by_index[index]
            blocks = [] if row is None else row.blocks[lo:hi]
            if lo + len(blocks) > width:
                raise RuntimeError(
                    f"memento: a packed block-table row needs {lo + len(blocks)} entries, the table has {width}"
                )
            hi = min(hi, width)
            rows += [index] * (hi - lo)
            columns += range(lo, hi)
            values += blocks
            values += [NULL_BLOCK_ID] * (hi - lo - len(blocks))
        self._dirty.clear()
        return np.array([rows, columns, values], dtype=np.int64).reshape(3, -1)

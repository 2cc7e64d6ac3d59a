"""The worker's incrementally kept packed rows against a from-scratch recomputation, after every kind of event.

An engine is played around the plugin's worker side (`WorkerLayouts.rewrite` / `after_forward`
on a GPU-like runner: vLLM's own BlockTable and CpuGpuBuffer objects): several requests in a
batch whose row order changes every step, prefill chunks cut after closing tokens and decodes,
blocks closed and compacted, entries given back (and their blocks reused by other requests),
restart_mode rewinds, preemptions with recompute on new blocks, finished requests whose rows are
reused. After every rewrite the block table, lengths and slots vLLM will read must equal what
the layout gives when recomputed from scratch (`PhysicalLayout.real_entries` over the whole
logical row), the device copy of every packed row must equal its host row, and a paged store
written through the rewritten slots and moved by the plan must hold, in each request's packed
prefix, exactly its live positions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memento.config import MementoConfig
from memento.vllm.packed import NULL_BLOCK_ID
from memento.vllm.runtime import WorkerLayouts
from memento.vllm.state import RequestStates
from tests.models import SPECIAL_IDS, memento_sequence
from tests.vllm.paged import GpuLikeRunner, long_memento_sequence

pytestmark = pytest.mark.vllm
CONFIGS = [
    MementoConfig(mask_delimiters=False),
    MementoConfig(mask_delimiters=True, keep_last_n_blocks=1),
    MementoConfig(mask_delimiters=True, keep_last_block_for_answer=True),
    MementoConfig(mask_delimiters=False, restart_mode=True),
]
MAX_REQS, MAX_BLOCKS, NUM_BLOCKS = 4, 256, 2048


@dataclass
class Request:
    request_id: str
    sequence: list[int]
    computed: int = 0
    blocks: list[int | None] = field(default_factory=list)  # the scheduler's list (None: given back)
    logical: list[int] = field(default_factory=list)  # the worker's row: append-only, keeps given-back ids


class Engine:
    """vLLM's side of each step, as far as the worker's rewrite sees it; `store` maps a slot to the position in it."""

    def __init__(self, config: MementoConfig, block_size: int, rng: random.Random) -> None:
        self.size, self.rng = block_size, rng
        self.runner = GpuLikeRunner(block_size, max_reqs=MAX_REQS, max_blocks=MAX_BLOCKS, max_tokens=256)
        self.worker = WorkerLayouts()
        self.worker.bind(self.runner, block_size, self.move)
        self.worker.states = RequestStates(SPECIAL_IDS, config, block_size)
        self.scheduler = RequestStates(SPECIAL_IDS, config, block_size)
        self.free = list(range(NUM_BLOCKS - 1, 0, -1))
        self.store: dict[int, int] = {}
        self.finished: list[str] = []
        self.checked_rows = 0
        self.events = dict.fromkeys(["compacted", "given back", "rewound", "preempted", "resumed", "finished"], 0)

    def unmask(self, request_id: str) -> None:
        """Run `request_id` without eviction (its own config, as a client may send): vLLM's values stay."""
        extra = {"block_masking_config": {"enable": True, "keep_last_n_blocks": -1, "mask_delimiters": False}}
        self.runner.requests[request_id] = SimpleNamespace(sampling_params=SimpleNamespace(extra_args=extra))
        self.scheduler.get(request_id, self.runner.requests[request_id].sampling_params)

    def move(self, caches: list, sources: list[int], targets: list[int]) -> None:
        self.events["compacted"] += 1
        values = [self.store[source] for source in sources]  # all read before any write
        for target, value in zip(targets, values, strict=True):
            self.store[target] = value

    def give_back(self, block: int) -> None:
        for offset in range(self.size):
            self.store[block * self.size + offset] = -1  # poison: a read of it fails the check
        self.free.append(block)

    def release(self, request: Request) -> None:
        """Scheduler, before the step: give back what the worker emptied; restart_mode rewinds."""
        state = self.scheduler.get(request.request_id, None)
        if state is None:
            return
        state.advance(request.sequence, request.computed)
        for entry in state.layout.begin_step(request.computed, state.closed_spans).released_entries:
            self.give_back(request.blocks[entry])
            request.blocks[entry] = None
            self.events["given back"] += 1
        memento = state.due_restart(request.computed)
        if memento is not None:
            request.computed = memento.start
            state.rewind(memento)
            self.events["rewound"] += 1

    def preempt(self, request: Request) -> None:
        for block in request.blocks:
            if block is not None:
                self.give_back(block)
        request.blocks, request.logical, request.computed = [], [], 0
        if self.scheduler.get(request.request_id, None) is not None:
            self.scheduler.get(request.request_id, None).restart_from_scratch()
        self.events["preempted"] += 1

    def count(self, request: Request) -> int:
        count = 1 if request.computed > 20 and self.rng.random() < 0.6 else self.rng.randint(1, 24)
        count = min(count, len(request.sequence) - request.computed)
        state = self.scheduler.get(request.request_id, None)
        if state is None:
            return count
        state.advance(request.sequence, request.computed + count)
        closing = state.first_closing(request.computed, request.computed + count - 1)
        return count if closing is None else closing + 1 - request.computed

    def step(self, running: list[Request]) -> None:
        """One step: rows in `running`'s order; checks the rewrite against a from-scratch recomputation."""
        self.worker.forget(self.finished)  # as the runner's execute_model does first
        self.finished = []
        for request in running:
            self.release(request)
        counts = [self.count(request) for request in running]
        runner, table, size = self.runner, self.runner.table, self.size
        batch, num_reqs = runner.input_batch, len(running)
        batch.num_reqs, batch.req_ids = num_reqs, [r.request_id for r in running]
        for row, (request, count) in enumerate(zip(running, counts, strict=True)):
            batch.token_ids_cpu[row, : len(request.sequence)] = request.sequence
            while len(request.blocks) * size < request.computed + count:
                block = self.free.pop()
                request.blocks.append(block)
                request.logical.append(block)
            table.add_row(request.logical, row)
        starts = np.concatenate([[0], np.cumsum(counts)])
        runner.query_start_loc.np[: num_reqs + 1] = starts
        runner.query_start_loc.copy_to_gpu()
        lengths = torch.tensor([r.computed + c for r, c in zip(running, counts, strict=True)], dtype=torch.int32)
        runner.optimistic_seq_lens_cpu[:num_reqs] = lengths
        runner.seq_lens[:num_reqs] = lengths
        table.commit_block_table(num_reqs)
        table.slot_mapping.gpu[:] = -7  # vLLM's logical slots (their values do not matter here)
        logical_rows = table.block_table.gpu.clone()
        self.worker.rewrite(num_reqs)
        self.check(running, counts, starts.tolist(), logical_rows)
        self.worker.after_forward()
        for request, count in zip(running, counts, strict=True):
            request.computed += count

    def check(self, running: list[Request], counts: list[int], starts: list[int], logical_rows: torch.Tensor) -> None:
        runner, size = self.runner, self.size
        block_table, slots = runner.table.block_table.gpu, runner.table.slot_mapping.gpu
        masked = [(r, c) for r, c in zip(running, counts, strict=True) if self.worker.states.states[r.request_id]]
        width = max((-(-(r.computed + c) // size) for r, c in masked), default=0)  # the masked rows' widest
        packed = self.worker.packed
        for row, (request, count) in enumerate(zip(running, counts, strict=True)):
            state = self.worker.states.states[request.request_id]
            if state is None:  # unmasked: exactly what vLLM computed
                assert torch.equal(block_table[row], logical_rows[row])
                assert int(runner.seq_lens[row]) == request.computed + count
                assert set(slots[starts[row] : starts[row + 1]].tolist()) == {-7}
                self.checked_rows += 1
                continue
            layout = state.layout
            entries = -(-(request.computed + count) // size)
            real = layout.real_entries(entries)  # from scratch: every entry of the logical row
            held = [request.logical[entry] for entry in real]
            assert None not in held and held == [block for block in request.blocks[:entries] if block is not None]
            assert block_table[row, :width].tolist() == held + [NULL_BLOCK_ID] * (width - len(held))
            assert torch.equal(block_table[row, width:], logical_rows[row, width:])  # vLLM's, untouched
            length = len(layout.positions)
            assert int(runner.seq_lens[row]) == int(runner.optimistic_seq_lens_cpu[row]) == length
            first = length - count
            expected = [held[p // size] * size + p % size for p in range(first, length)]
            assert slots[starts[row] : starts[row + 1]].tolist() == expected
            # the kept row, on the host and on the device, is the from-scratch one
            kept = packed.rows[request.request_id]
            assert kept.entries == layout.real_entries(kept.known) and kept.blocks == held
            device_row = packed.table[kept.index].tolist()
            assert device_row == held + [NULL_BLOCK_ID] * (len(device_row) - len(held))
            # the step's K/V lands at its slots; the packed prefix then holds exactly the live positions
            for offset, slot in enumerate(expected):
                self.store[slot] = request.computed + offset
            prefix = [self.store.get(held[p // size] * size + p % size) for p in range(length)]
            assert prefix == layout.positions, (request.request_id, prefix, layout.positions)
            self.checked_rows += 1


def play(engine: Engine, rng: random.Random, num_requests: int, blocks: int) -> None:
    """Run requests to their ends, admitted and preempted at random, in a row order that changes every step."""
    waiting = [Request(f"r{i}", memento_sequence(rng, blocks=blocks)) for i in range(num_requests)]
    for request in waiting:
        if rng.random() < 0.2:
            engine.unmask(request.request_id)
    running: list[Request] = []
    while running or waiting:
        if waiting and (len(running) < 2 or rng.random() < 0.3) and len(running) < MAX_REQS:
            request = waiting.pop(rng.randrange(len(waiting)))
            engine.events["resumed"] += request.request_id in engine.worker.packed.rows
            running.append(request)
        if len(running) > 1 and rng.random() < 0.05:
            request = running.pop(rng.randrange(len(running)))
            engine.preempt(request)
            waiting.append(request)
        rng.shuffle(running)  # vLLM condenses and reorders the batch
        engine.step(running)
        for request in [r for r in running if r.computed == len(r.sequence)]:
            running.remove(request)
            engine.finished.append(request.request_id)
            engine.events["finished"] += 1
    engine.step([])  # the last finished requests are forgotten


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rng=st.randoms(use_true_random=False),
    config=st.sampled_from(CONFIGS),
    block_size=st.sampled_from([1, 2, 4, 16]),
    num_requests=st.integers(1, 6),
)
def test_incremental_rows_equal_a_from_scratch_recomputation_after_every_event(rng, config, block_size, num_requests):
    engine = Engine(config, block_size, rng)
    play(engine, rng, num_requests, blocks=rng.randint(2, 10))
    assert engine.checked_rows > 0
    assert not engine.worker.packed.rows  # every finished request was forgotten


def test_the_random_engine_plays_every_kind_of_event():
    """The property above is only as good as its schedules: one of them, seeded, hits every event."""
    rng = random.Random(7)
    engine = Engine(MementoConfig(mask_delimiters=False, restart_mode=True), 4, rng)
    play(engine, rng, num_requests=6, blocks=12)
    assert all(count > 0 for count in engine.events.values()), engine.events
    assert engine.checked_rows > 300


def test_a_decode_step_touches_only_what_changed():
    """Per step, the cells written to the device table are the ones that changed (a block entered, entries
    given back), never the whole row: a long request's decode steps write 0 cells, or 1 when a block starts."""
    rng = random.Random(3)
    engine = Engine(MementoConfig(mask_delimiters=False), 4, rng)
    request = Request("r0", long_memento_sequence(rng, blocks=12))
    written = []
    flush = engine.worker.packed.flush

    def counting_flush(width: int) -> np.ndarray:
        cells = flush(width)
        written.append(cells.shape[1])
        return cells

    engine.worker.packed.flush = counting_flush  # type: ignore[method-assign]
    engine.rng = SimpleNamespace(random=lambda: 0.0, randint=lambda a, b: 1)  # decode one token per step
    while request.computed < len(request.sequence):
        engine.step([request])
    assert len(request.sequence) > 400 and len(written) == len(request.sequence)
    entries = -(-len(request.sequence) // 4)
    released = len(engine.worker.states.states["r0"].layout.released)
    assert released > entries * 0.6  # most of the request was evicted on the way
    # each entry goes up once when it enters; a splice rewrites the entries given back and the <= 2 after them
    assert sum(written) <= entries + 3 * released
    assert written.count(0) > len(written) / 2

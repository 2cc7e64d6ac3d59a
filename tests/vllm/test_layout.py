"""The packed KV layout against the one rule, with the scheduler and worker driven as vLLM drives them.

A small paged store stands in for vLLM's block pool (each slot holds the logical position
written there): the scheduler's layout gives entries back, the worker's moves tokens and
writes new ones at their physical slots, chunks end right after each closing token, and
requests are preempted and recomputed. Every query must find exactly the keys the rule lets it
see in its physical prefix, both sides must agree on every entry, and no block may be read
after it went back to the pool.
"""

from __future__ import annotations

import random

import pytest

from memento.attention import analyze, key_hidden_from, visibility_mask
from memento.config import MementoConfig
from memento.vllm.state import RequestStates
from tests.models import SPECIAL_IDS, memento_sequence

CONFIGS = [
    MementoConfig(mask_delimiters=False),
    MementoConfig(mask_delimiters=True),
    MementoConfig(mask_delimiters=False, keep_last_n_blocks=1),
    MementoConfig(mask_delimiters=True, keep_last_n_blocks=2),
    MementoConfig(mask_delimiters=True, keep_last_block_for_answer=True),
    MementoConfig(mask_delimiters=False, restart_mode=True),
]


class PagedStore:
    """Blocks of `block_size` slots from a free list; a slot holds the logical position written there."""

    def __init__(self, block_size: int, num_blocks: int = 4096) -> None:
        self.block_size = block_size
        self.free = list(range(num_blocks - 1, 0, -1))  # block 0 is vLLM's null block
        self.slots: dict[int, int] = {}

    def allocate(self) -> int:
        block = self.free.pop()
        for offset in range(self.block_size):
            self.slots.pop(block * self.block_size + offset, None)  # whatever was there is gone
        return block

    def release(self, block: int) -> None:
        for offset in range(self.block_size):
            self.slots[block * self.block_size + offset] = -1  # poison: reading it later fails the test
        self.free.append(block)


def _slot(blocks: list[int], index: int, block_size: int) -> int:
    return blocks[index // block_size] * block_size + index % block_size


class Rule:
    """The keys query q may see. In restart_mode a memento is computed twice: first with its block visible
    (its tokens are generated so), then, after the rewind, without it (the KV that stays)."""

    def __init__(self, sequence: list[int], config: MementoConfig) -> None:
        self.restart = config.restart_mode
        if self.restart:
            self.final = visibility_mask(sequence, SPECIAL_IDS, config)
            self.first = visibility_mask(
                sequence, SPECIAL_IDS, config.replace(restart_mode=False, mask_delimiters=True)
            )
            self.mementos = [b.summary_range for b in analyze(sequence, SPECIAL_IDS, config).blocks if b.summary_range]
        else:
            self.hidden_from = key_hidden_from(sequence, SPECIAL_IDS, config).tolist()
        self.never = len(sequence)

    def allowed(self, query: int, recomputed: set[int]) -> list[int]:
        if not self.restart:
            return [k for k in range(query + 1) if self.hidden_from[k] == self.never or self.hidden_from[k] > query]
        first_pass = any(query in memento and memento.start not in recomputed for memento in self.mementos)
        return (self.first if first_pass else self.final)[query, : query + 1].nonzero().flatten().tolist()


def run_request(sequence: list[int], config: MementoConfig, block_size: int, rng: random.Random) -> int:
    """Drive one request to its end; returns the most entries it held at once."""
    rule = Rule(sequence, config)
    recomputed: set[int] = set()  # restart_mode: mementos (by start) rewound and computed again
    scheduler = RequestStates(SPECIAL_IDS, config, block_size).get("r", None)
    worker = RequestStates(SPECIAL_IDS, config, block_size).get("r", None)
    store = PagedStore(block_size)
    entries: list[int | None] = []  # the manager's block list (None = null block)
    computed, preempted, most_held = 0, 0, 0
    while computed < len(sequence):
        # scheduler, before scheduling: give back what the worker emptied after the last forward
        scheduler.advance(sequence, computed)
        plan = scheduler.layout.begin_step(computed, scheduler.closed_spans)
        for entry in plan.released_entries:
            store.release(entries[entry])
            entries[entry] = None
        memento = scheduler.due_restart(computed)
        if memento is not None:  # restart_mode: rewind to the memento's start
            computed = memento.start
            scheduler.rewind(memento)
            recomputed.add(memento.start)
        if computed > 8 and preempted < 2 and rng.random() < 0.05:  # preempt: every block back, recompute
            for block in entries:
                if block is not None:
                    store.release(block)
            entries, computed, preempted = [], 0, preempted + 1
            scheduler.restart_from_scratch()
            recomputed.clear()
            continue
        # a decode step after the prompt, else a prefill chunk cut right after a closing token
        count = 1 if rng.random() < 0.7 else rng.randint(1, 12)
        count = min(count, len(sequence) - computed)
        scheduler.advance(sequence, computed + count)
        closing = scheduler.first_closing(computed, computed + count - 1)
        if closing is not None:
            count = closing + 1 - computed
        while len(entries) * block_size < computed + count:
            entries.append(store.allocate())
        most_held = max(most_held, sum(block is not None for block in entries))
        # worker, before the forward: place the new tokens at the physical end
        worker.advance(sequence, computed)
        assert not worker.layout.begin_step(computed, worker.closed_spans).moves
        first = worker.layout.place(count)
        held = [entries[e] for e in worker.layout.real_entries(len(entries))]
        assert None not in held and held == [block for block in entries if block is not None]
        for index in range(first, first + count):
            store.slots[_slot(held, index, block_size)] = computed + index - first
        # the forward: query q sees exactly its physical prefix, which must be what the rule allows
        for offset in range(count):
            query = computed + offset
            prefix = [store.slots[_slot(held, index, block_size)] for index in range(first + offset + 1)]
            allowed = rule.allowed(query, recomputed)
            assert prefix == allowed, (query, prefix, allowed)
        # worker, right after the forward: compact (reading moved tokens before any block is reused)
        worker.advance(sequence, computed + count)
        plan = worker.layout.begin_step(computed + count, worker.closed_spans)
        old = sorted({*worker.layout.real_entries(len(entries)), *plan.released_entries})
        old_blocks = [entries[e] for e in old]
        values = [store.slots[_slot(old_blocks, source, block_size)] for source, _ in plan.moves]
        for (_, target), value in zip(plan.moves, values, strict=True):
            store.slots[_slot(old_blocks, target, block_size)] = value
        computed += count
        assert worker.layout.released == scheduler.layout.released | set(plan.released_entries)
    return most_held


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("block_size", [1, 2, 4, 8, 16, 32, 64])  # 16-64: GPU page sizes
def test_packed_layout_follows_the_rule_through_steps_chunks_and_preemptions(config, block_size):
    rng = random.Random(block_size)
    for _ in range(25):
        sequence = memento_sequence(rng, blocks=rng.randint(1, 8))
        run_request(sequence, config, block_size, rng)


def test_restart_mode_rewinds_once_per_memento_and_again_after_a_preemption():
    rng = random.Random(3)
    config = MementoConfig(mask_delimiters=False, restart_mode=True)
    sequence = memento_sequence(rng, blocks=4)
    state = RequestStates(SPECIAL_IDS, config, 4).get("r", None)
    state.advance(sequence, len(sequence))
    mementos = [b.summary_range for b in analyze(sequence, SPECIAL_IDS, config).blocks if b.summary_range]
    assert [memento for _, memento in state.restarts] == mementos and len(mementos) == 4
    for memento in mementos:
        assert state.due_restart(memento.stop - 1) is None  # the closing token has not run yet
        assert state.due_restart(memento.stop) == memento
        state.rewind(memento)
    assert state.due_restart(len(sequence)) is None
    state.restart_from_scratch()
    assert state.due_restart(len(sequence)) == mementos[0]


def test_memory_held_follows_the_live_tokens_not_the_length():
    """Long blocks with short mementos: the entries held stay near what the live tokens need."""
    rng = random.Random(0)
    config = MementoConfig(mask_delimiters=True)
    sequence = [*memento_sequence(rng, blocks=0)[:-4]]
    for _ in range(12):
        sequence += [SPECIAL_IDS.block_start, *[sequence[3]] * 60, SPECIAL_IDS.block_end]
        sequence += [SPECIAL_IDS.summary_start, *[sequence[3]] * 4, SPECIAL_IDS.summary_end]
    most_held = run_request(sequence, config, 8, random.Random(1))
    live_peak = 20 + 12 * 6 + 62  # prompt, every memento, one open block
    assert most_held * 8 <= live_peak + 3 * 8
    assert most_held * 8 < len(sequence) / 5

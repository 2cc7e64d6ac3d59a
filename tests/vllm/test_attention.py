"""K/V moves read and write tokens exactly where vLLM's own CPU cache write puts them."""

from __future__ import annotations

import pytest
import torch
from vllm.v1.attention.backends.cpu_attn import _get_attn_isa

from memento.vllm.attention import move_tokens, token_elements
from vllm import _custom_ops as ops

pytestmark = pytest.mark.vllm


def _write(cache: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, slots: list[int], isa: str) -> None:
    num_blocks, num_kv_heads, block_size, doubled = cache.shape
    key_cache, value_cache = cache.view(num_blocks, num_kv_heads, 2 * block_size, doubled // 2).chunk(2, dim=2)
    ops.cpu_attn_reshape_and_cache(keys, values, key_cache, value_cache, torch.tensor(slots), isa)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_moved_tokens_equal_tokens_written_there_by_vllm(dtype):
    block_size, num_kv_heads, head_size = 32, 2, 64
    isa = _get_attn_isa(dtype, block_size, head_size, "auto")
    keys = torch.randn(6, num_kv_heads, head_size).to(dtype)
    values = torch.randn(6, num_kv_heads, head_size).to(dtype)
    layers = [torch.zeros(4, num_kv_heads, block_size, 2 * head_size, dtype=dtype) for _ in range(2)]
    for cache in layers:
        _write(cache, keys, values, [3, 40, 41, 70, 95, 127], isa)
    # overlapping moves inside one request's blocks, as compaction makes them: 40, 41, 70 -> 4, 5, 6; 95 -> 40
    move_tokens([layers[0], layers[0], layers[1]], isa, [40, 41, 70, 95], [4, 5, 6, 40])
    expected = torch.zeros_like(layers[0])
    _write(expected, keys[[0, 1, 2, 3, 4, 5]], values[[0, 1, 2, 3, 4, 5]], [3, 4, 5, 6, 40, 127], isa)
    key_index, value_index = token_elements(isa, dtype, block_size, num_kv_heads, head_size)
    for cache in layers:
        flat, reference = cache.view(4, -1), expected.view(4, -1)
        for slot in [3, 4, 5, 6, 40, 127]:
            block, offset = divmod(slot, block_size)
            assert torch.equal(flat[block, key_index[offset]], reference[block, key_index[offset]])
            assert torch.equal(flat[block, value_index[offset]], reference[block, value_index[offset]])

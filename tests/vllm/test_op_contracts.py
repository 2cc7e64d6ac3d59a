"""The strict stand-ins of vLLM's GPU cache writes: they write what the kernels write, in every KV dtype and
physical layout, and refuse in one line every argument the CUDA kernels would misread instead of checking."""

from __future__ import annotations

import pytest
import torch

from memento.vllm.op_contracts import (
    CacheWriteContractError,
    reshape_and_cache_flash,
    triton_reshape_and_cache_flash,
)

pytestmark = pytest.mark.vllm
BLOCKS, HEADS, BLOCK_SIZE, HEAD_SIZE = 4, 2, 16, 8
OPS = {"flash": reshape_and_cache_flash, "triton": triton_reshape_and_cache_flash}
ONE = torch.ones((), dtype=torch.float32)


def _cache(dtype: torch.dtype, nhd: bool) -> torch.Tensor:
    """A logical [B, H, N, 2D] cache over HND or NHD pages, filled with a byte pattern (untouched bytes show)."""
    shape = (BLOCKS, BLOCK_SIZE, HEADS, 2 * HEAD_SIZE) if nhd else (BLOCKS, HEADS, BLOCK_SIZE, 2 * HEAD_SIZE)
    raw = (torch.arange(torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()) % 7 + 1).to(
        torch.uint8
    )
    cache = raw.view(dtype).view(shape)
    return cache.permute(0, 2, 1, 3) if nhd else cache


def _split(cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The views vLLM's FLASH_ATTN / TRITON_ATTN impls hand their cache write: [B, N, H, D] each."""
    key_cache, value_cache = cache.transpose(1, 2).split(HEAD_SIZE, dim=-1)
    return key_cache, value_cache


def _tokens(count: int, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    key = torch.randn(count, HEADS, HEAD_SIZE, generator=generator).to(dtype)
    value = torch.randn(count, HEADS, HEAD_SIZE, generator=generator).to(dtype)
    return key, value


SLOTS = torch.tensor([3, -1, 17, 63, 40, 0])  # -1: a padding token, skipped


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("nhd", [False, True], ids=["HND", "NHD"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_writes_land_at_their_slots_of_the_logical_view(op, nhd, dtype):
    cache = _cache(dtype, nhd)
    before = cache.clone()
    key, value = _tokens(len(SLOTS), dtype)
    OPS[op](key, value, *_split(cache), SLOTS, "auto", ONE, ONE)
    expected = before.clone()
    for token, slot in enumerate(SLOTS.tolist()):
        if slot >= 0:
            expected[slot // BLOCK_SIZE, :, slot % BLOCK_SIZE] = torch.cat((key[token], value[token]), dim=-1)
    assert torch.equal(cache.view(torch.uint8), expected.view(torch.uint8))  # padding and other slots untouched


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("cache_dtype", [torch.uint8, torch.float8_e4m3fn], ids=["uint8", "e4m3"])
def test_fp8_writes_quantise_the_model_dtype_by_the_scale(op, cache_dtype):
    cache = _cache(cache_dtype, nhd=True)
    key, value = _tokens(len(SLOTS), torch.bfloat16)
    k_scale, v_scale = torch.tensor(0.5), torch.tensor(2.0)
    OPS[op](key, value, *_split(cache), SLOTS, "fp8", k_scale, v_scale)
    stored = cache.view(torch.float8_e4m3fn)
    for token, slot in enumerate(SLOTS.tolist()):
        if slot >= 0:
            got = stored[slot // BLOCK_SIZE, :, slot % BLOCK_SIZE]
            assert torch.equal(got[:, :HEAD_SIZE].float(), (key[token].float() / 0.5).to(torch.float8_e4m3fn).float())
            assert torch.equal(got[:, HEAD_SIZE:].float(), (value[token].float() / 2).to(torch.float8_e4m3fn).float())


def test_flash_write_refuses_a_float32_key_into_a_bfloat16_cache():
    """Finding 30.1's mechanism: the CUDA kernel would write fp32 elements at 2x the offsets, past the cache."""
    cache = _cache(torch.bfloat16, nhd=True)
    before = cache.clone()
    key, value = _tokens(len(SLOTS), torch.float32)
    with pytest.raises(CacheWriteContractError) as error:
        reshape_and_cache_flash(key, value, *_split(cache), SLOTS, "auto", ONE, ONE)
    message = str(error.value)
    assert message.startswith("reshape_and_cache_flash: key is torch.float32 but the cache is torch.bfloat16")
    assert "4-byte elements at 2x the cache's offsets" in message and "\n" not in message
    assert torch.equal(cache.view(torch.uint8), before.view(torch.uint8))
    triton_reshape_and_cache_flash(key, value, *_split(cache), SLOTS, "auto", ONE, ONE)  # Triton casts on store
    assert torch.equal(cache[0, :, 3, :HEAD_SIZE], key[0].to(torch.bfloat16))


def _bad_calls():
    """(op, name, function(cache, key, value) -> the op's arguments) for every broken argument."""

    def args(cache, key, value, slots=SLOTS, dtype="auto", scales=(ONE, ONE), caches=None):
        return (key, value, *(caches or _split(cache)), slots, dtype, *scales)

    def strided_value(cache, key, value):
        key_cache, _ = _split(cache)
        contiguous = torch.zeros_like(key_cache)  # a V cache whose strides differ from K's
        return args(cache, key, value, caches=(key_cache, contiguous))

    def padded_key(cache, key, value):
        wide = torch.zeros(key.shape[0], HEADS, 2 * HEAD_SIZE, dtype=key.dtype)[..., :HEAD_SIZE]
        return args(cache, wide, value)

    def element_stride(cache, key, value):
        interleaved = torch.zeros(BLOCKS, BLOCK_SIZE, HEADS, 2 * HEAD_SIZE)  # K and V elements alternating
        return args(cache, key, value, caches=(interleaved[..., ::2], interleaved[..., 1::2]))

    cases = [
        ("slot past the cache", OPS, lambda c, k, v: args(c, k, v, slots=torch.tensor([0, 64, 1, 2, 3, 4]))),
        ("slot below -1", OPS, lambda c, k, v: args(c, k, v, slots=torch.tensor([0, -2, 1, 2, 3, 4]))),
        ("slot written twice", OPS, lambda c, k, v: args(c, k, v, slots=torch.tensor([5, 1, 2, 5, 3, 4]))),
        ("more slots than tokens", OPS, lambda c, k, v: args(c, k, v, slots=torch.arange(7))),
        ("int32 slots", ["flash"], lambda c, k, v: args(c, k, v, slots=SLOTS.to(torch.int32))),  # Triton casts
        ("value cache strides", OPS, strided_value),
        ("key heads not packed", OPS, padded_key),
        ("cache element stride", OPS, element_stride),
        ("fp8 without float32 scales", OPS, lambda c, k, v: args(c, k, v, dtype="fp8", scales=(1.0, 1.0))),
        ("unknown kv_cache_dtype", OPS, lambda c, k, v: args(c, k, v, dtype="int4")),
    ]
    return [(op, name, call) for name, ops, call in cases for op in ops]


BAD_CALLS = _bad_calls()


@pytest.mark.parametrize(("op", "name", "call"), BAD_CALLS, ids=[f"{op}-{name}" for op, name, _ in BAD_CALLS])
def test_every_argument_the_kernel_would_misread_is_refused_in_one_line(op, name, call):
    cache = _cache(torch.float32, nhd=False)
    before = cache.clone()
    key, value = _tokens(len(SLOTS), torch.float32)
    with pytest.raises(CacheWriteContractError) as error:
        OPS[op](*call(cache, key, value))
    assert str(error.value).startswith(f"{OPS[op].__name__}: ") and "\n" not in str(error.value)
    assert torch.equal(cache.view(torch.uint8), before.view(torch.uint8))


def test_fp8_caches_must_hold_the_stored_fp8_type():
    cache = _cache(torch.float8_e5m2, nhd=False)
    key, value = _tokens(len(SLOTS), torch.bfloat16)
    for op in OPS.values():
        with pytest.raises(
            CacheWriteContractError, match=r"stores torch\.float8_e4m3fn bytes; the cache is torch\.float8_e5m2"
        ):
            op(key, value, *_split(cache), SLOTS, "fp8", ONE, ONE)
    reshape_and_cache_flash(key, value, *_split(cache), SLOTS, "fp8_e5m2", ONE, ONE)  # the CUDA op stores e5m2
    assert torch.equal(cache[0, :, 3, :HEAD_SIZE].float(), key[0].to(torch.float8_e5m2).float())
    with pytest.raises(CacheWriteContractError, match="Triton write stores float8_e4m3fn only"):
        triton_reshape_and_cache_flash(key, value, *_split(cache), SLOTS, "fp8_e5m2", ONE, ONE)

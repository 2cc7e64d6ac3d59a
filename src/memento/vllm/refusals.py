"""The one table of engine features memento's vLLM plugin refuses, read from either side of vLLM's start.

`memento serve` reads them from its vLLM command line as vLLM's own parser does (`EngineArgs`, before
vLLM starts); the plugin reads them again from the `VllmConfig` vLLM built (in the scheduler and each
model runner, before the model loads). Both go through `EngineFeatures` and `refusal`, so a rule
exists once and says the same line on both sides. Pure Python: vLLM's objects are read by attribute.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

V2_RUNNER_ENV = "VLLM_USE_V2_MODEL_RUNNER"
UNVERIFIED_BACKEND_ENV = "MEMENTO_ALLOW_UNVERIFIED_BACKEND"
"""Comma-separated attention backends to run although no run of the plugin on them has passed yet."""

SUPPORTED_BACKENDS = ("CPU_ATTN", "FLASH_ATTN", "TRITON_ATTN", "FLASHINFER")
"""vLLM attention backends whose metadata the plugin's runner-level rewrite feeds (their builders read
`seq_lens`, the block table and the slot mapping from the runner's buffers, and nothing else per token)."""
UNVERIFIED_BACKENDS = ("FLASHINFER",)
"""Supported by design, but none of their code has ever run under the plugin: only with `UNVERIFIED_BACKEND_ENV`."""


@dataclass(frozen=True)
class EngineFeatures:
    """What the refusals read of one engine configuration (the defaults break no rule).

    `memento_masking` is False for a plain vLLM engine (the scheduler rule then does not apply);
    `attention_backends` holds upper-case `AttentionBackendEnum` names, empty when vLLM chooses.
    """

    memento_masking: bool = False
    v2_model_runner: bool = False
    speculative: bool = False
    prefix_caching: bool = False
    async_scheduling: bool = False
    scheduler_cls: Any = None
    pipeline_parallel_size: int = 1
    tensor_parallel_size: int = 1
    decode_context_parallel_size: int = 1
    prefill_context_parallel_size: int = 1
    dual_batch_overlap: bool = False
    ubatch_size: int = 0
    kv_connector: bool = False
    kv_offloading: bool = False
    cache_dtype: str = "auto"
    model_dtype: str = "auto"
    attention_backends: tuple[str, ...] = ()


def backend_names(backend: Any) -> tuple[str, ...]:
    """vLLM's `--attention-backend` value (a name in any case, "auto", an enum member or None) as names."""
    if backend is None:
        return ()
    name = str(getattr(backend, "name", backend)).upper()
    return () if name == "AUTO" else (name,)


def backend_refusal(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Why the plugin will not drive attention backend `name` (one line), or None."""
    environ = os.environ if environ is None else environ
    if name not in SUPPORTED_BACKENDS:
        driven = ", ".join(n for n in SUPPORTED_BACKENDS if n not in UNVERIFIED_BACKENDS)
        return (
            f"memento's vLLM plugin drives the attention backends {driven} (and, unverified, "
            f"{', '.join(UNVERIFIED_BACKENDS)}); this engine uses {name}: pick one with --attention-backend, or use "
            "the HF backend"
        )
    allowed = {part.strip().upper() for part in environ.get(UNVERIFIED_BACKEND_ENV, "").split(",")}
    if name in UNVERIFIED_BACKENDS and name not in allowed:
        return (
            f"attention backend {name} is unverified under memento's vLLM plugin (none of its code has run with it "
            f"yet): set {UNVERIFIED_BACKEND_ENV}={name} to use it anyway, or pick FLASH_ATTN or TRITON_ATTN with "
            "--attention-backend"
        )
    return None


def _memento_scheduler(value: Any) -> bool:
    """Whether vLLM's `scheduler_cls` (a class, a qualified name or None) is memento's scheduler or a subclass."""
    from memento.vllm.engine import SCHEDULER

    if value is None:
        return False
    if value == SCHEDULER:
        return True
    if isinstance(value, str):
        from vllm.utils.import_utils import resolve_obj_by_qualname

        try:
            value = resolve_obj_by_qualname(value)
        except (ImportError, AttributeError, ValueError):
            return False
    from memento.vllm.scheduler import MementoScheduler

    return isinstance(value, type) and issubclass(value, MementoScheduler)


def _scheduler_name(value: Any) -> str:
    if value is None:
        return "vLLM's default scheduler"
    return value if isinstance(value, str) else f"{value.__module__}.{value.__qualname__}"


_FLOAT_CACHE_DTYPES = {"float": "float32", "float32": "float32", "half": "float16", "float16": "float16"}
_FLOAT_CACHE_DTYPES["bfloat16"] = "bfloat16"


def float_cache_mismatch(features: EngineFeatures) -> bool:
    """An explicit 2- or 4-byte KV cache dtype other than the model's: the forward hands the cache write keys in
    the model dtype, and CUDA's `reshape_and_cache_flash` takes its element size from the key, not the cache."""
    cache = _FLOAT_CACHE_DTYPES.get(features.cache_dtype)
    model = _FLOAT_CACHE_DTYPES.get(features.model_dtype.removeprefix("torch."))
    return cache is not None and model is not None and cache != model


def _movable() -> tuple[str, ...]:
    from memento.vllm.kv_mover import MOVABLE_CACHE_DTYPES

    return MOVABLE_CACHE_DTYPES


@dataclass(frozen=True)
class Rule:
    """One refused feature: when `refused(features)` holds, the line says `feature` (the vLLM flag that turns it
    on), why memento attention would be wrong under it, and what to do. Texts are formatted with `f` = the
    features, `scheduler` = the scheduler's name and `movable` = the KV cache dtypes the mover handles."""

    refused: Callable[[EngineFeatures], bool]
    feature: str
    reason: str
    fix: str = "turn it off or use the HF backend"

    def message(self, features: EngineFeatures) -> str:
        values = {"f": features, "scheduler": _scheduler_name(features.scheduler_cls)}
        if "{movable}" in self.fix:
            values["movable"] = ", ".join(_movable())
        text = f"memento's vLLM plugin refuses {self.feature}: {self.reason}; {self.fix}"
        return text.format(**values)


SHARDED = "tokens are sharded across ranks by logical offset, the packed cache is not"
MOVES_BLOCKS = "moves logical blocks the plugin has packed or given back"

RULES: tuple[Rule, ...] = (
    Rule(
        lambda f: f.v2_model_runner,
        f"vLLM's V2 model runner ({V2_RUNNER_ENV})",
        "it bypasses memento's hooks (attention would see evicted blocks)",
        f"set {V2_RUNNER_ENV}=0 (memento serve and offline_llm set it)",
    ),
    Rule(
        lambda f: f.async_scheduling,
        "async scheduling (--async-scheduling)",
        "the worker would read a step's tokens before they are known and free blocks the scheduler still counts "
        "live, silently corrupting attention",
        "pass --no-async-scheduling (memento serve and offline_llm do)",
    ),
    Rule(
        lambda f: f.memento_masking and not _memento_scheduler(f.scheduler_cls),
        "--scheduler-cls {scheduler}",
        "only memento's scheduler ends prefill chunks after a closing token and gives evicted blocks back "
        "(otherwise later queries of a chunk attend to the evicted block)",
        "leave --scheduler-cls to memento (memento.vllm.scheduler.MementoScheduler or a subclass)",
    ),
    Rule(
        lambda f: f.speculative,
        "speculative decoding (--speculative-config)",
        "drafted tokens would close spans the verifier may reject, and the drafter edits seq_lens itself",
    ),
    Rule(
        lambda f: f.prefix_caching,
        "prefix caching (--enable-prefix-caching)",
        "KV computed under the memento mask would be reused as if unmasked",
        "pass --no-enable-prefix-caching (memento serve does)",
    ),
    Rule(
        lambda f: f.pipeline_parallel_size > 1,
        "pipeline parallelism (--pipeline-parallel-size {f.pipeline_parallel_size})",
        "the compaction hooks run on one stage's runner only",
    ),
    Rule(
        lambda f: f.decode_context_parallel_size > 1,
        "decode context parallelism (--decode-context-parallel-size)",
        SHARDED,
    ),
    Rule(
        lambda f: f.prefill_context_parallel_size > 1,
        "prefill context parallelism (--prefill-context-parallel-size)",
        SHARDED,
    ),
    Rule(
        lambda f: f.dual_batch_overlap or f.ubatch_size > 1,
        "dual-batch overlap / micro-batching (--enable-dbo, --ubatch-size)",
        "the rewrite covers one batch per step",
    ),
    Rule(lambda f: f.kv_connector, "KV connectors (--kv-transfer-config)", f"each {MOVES_BLOCKS}"),
    Rule(lambda f: f.kv_offloading, "KV offloading (--kv-offloading-size)", f"it {MOVES_BLOCKS}"),
    Rule(
        lambda f: f.cache_dtype not in _movable(),
        "KV cache dtype {f.cache_dtype} (--kv-cache-dtype)",
        "its pages do not keep each token's bytes together (e.g. NVFP4's split scales), so token moves through the "
        "cache view would corrupt them",
        "use one of {movable}",
    ),
    Rule(
        float_cache_mismatch,
        "KV cache dtype {f.cache_dtype} with a {f.model_dtype} model (--kv-cache-dtype)",
        "the attention layers hand the cache write keys in the model dtype, which CUDA's cache write does not "
        "convert (elements of the wrong size at the wrong offsets)",
        "leave --kv-cache-dtype auto (the model's dtype) or use an fp8 cache",
    ),
    Rule(
        lambda f: f.tensor_parallel_size > 1,
        "tensor parallelism (--tensor-parallel-size {f.tensor_parallel_size})",
        "each rank would compact its own head shard by the same plan, but no multi-GPU run has verified it yet",
    ),
)


def refusal(features: EngineFeatures) -> str | None:
    """The first rule `features` break (`RULES`, then each attention backend named), as one line, or None."""
    for rule in RULES:
        if rule.refused(features):
            return rule.message(features)
    return next(filter(None, map(backend_refusal, features.attention_backends)), None)


def from_vllm_config(vllm_config: Any, memento_masking: bool) -> EngineFeatures:
    """The features of the `VllmConfig` vLLM built (every default resolved)."""
    parallel, cache = vllm_config.parallel_config, vllm_config.cache_config
    scheduler = getattr(vllm_config, "scheduler_config", None)
    attention = getattr(vllm_config, "attention_config", None)
    backends = backend_names(getattr(attention, "backend", None))
    for backend in (getattr(attention, "backend_per_kind", None) or {}).values():
        backends += backend_names(backend)
    return EngineFeatures(
        memento_masking=memento_masking,
        v2_model_runner=bool(getattr(vllm_config, "use_v2_model_runner", False)),
        speculative=getattr(vllm_config, "speculative_config", None) is not None,
        prefix_caching=bool(getattr(cache, "enable_prefix_caching", False)),
        async_scheduling=bool(getattr(scheduler, "async_scheduling", False)),
        scheduler_cls=getattr(scheduler, "scheduler_cls", None)
        if scheduler is not None
        else EngineFeatures.scheduler_cls,
        pipeline_parallel_size=getattr(parallel, "pipeline_parallel_size", 1),
        tensor_parallel_size=getattr(parallel, "tensor_parallel_size", 1),
        decode_context_parallel_size=getattr(parallel, "decode_context_parallel_size", 1),
        prefill_context_parallel_size=getattr(parallel, "prefill_context_parallel_size", 1),
        dual_batch_overlap=bool(getattr(parallel, "enable_dbo", False)),
        ubatch_size=getattr(parallel, "ubatch_size", 0),
        kv_connector=getattr(vllm_config, "kv_transfer_config", None) is not None,
        kv_offloading=getattr(cache, "kv_offloading_size", None) is not None,
        cache_dtype=str(getattr(cache, "cache_dtype", "auto")),
        model_dtype=str(getattr(getattr(vllm_config, "model_config", None), "dtype", "auto")).removeprefix("torch."),
        attention_backends=backends,
    )


def from_engine_args(engine_args: Any) -> EngineFeatures:
    """The features of vLLM's `EngineArgs` as parsed from a command line (before vLLM resolves its defaults).

    An unset tri-state flag (prefix caching, async scheduling: None) is left to the engine-time check:
    memento's launch paths always set both.
    """
    attention = getattr(engine_args, "attention_config", None)
    backends = backend_names(engine_args.attention_backend) + backend_names(getattr(attention, "backend", None))
    for backend in (getattr(attention, "backend_per_kind", None) or {}).values():
        backends += backend_names(backend)
    return EngineFeatures(
        memento_masking=True,
        speculative=engine_args.speculative_config is not None,
        prefix_caching=bool(engine_args.enable_prefix_caching),
        async_scheduling=bool(engine_args.async_scheduling),
        scheduler_cls=engine_args.scheduler_cls,
        pipeline_parallel_size=engine_args.pipeline_parallel_size,
        tensor_parallel_size=engine_args.tensor_parallel_size,
        decode_context_parallel_size=engine_args.decode_context_parallel_size,
        prefill_context_parallel_size=engine_args.prefill_context_parallel_size,
        dual_batch_overlap=bool(engine_args.enable_dbo),
        ubatch_size=engine_args.ubatch_size,
        kv_connector=engine_args.kv_transfer_config is not None,
        kv_offloading=engine_args.kv_offloading_size is not None,
        cache_dtype=str(engine_args.kv_cache_dtype),
        model_dtype=str(getattr(engine_args, "dtype", "auto")),
        attention_backends=backends,
    )

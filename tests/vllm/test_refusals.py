"""What the plugin refuses at start on any platform (engine features, attention layers, backends): one line each.

Built from vLLM's own config and attention classes (no model, no GPU): `check_vllm_config` reads a
VllmConfig's parts, `check_attention_layers` vLLM's layers with their backend impls.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from vllm.config import AttentionConfig, CacheConfig, ParallelConfig, SchedulerConfig
from vllm.model_executor.layers.attention import Attention
from vllm.model_executor.layers.attention.chunked_local_attention import ChunkedLocalAttention
from vllm.v1.attention.backend import AttentionType
from vllm.v1.attention.backends.flash_attn import FlashAttentionImpl
from vllm.v1.attention.backends.triton_attn import TritonAttentionImpl
from vllm.v1.core.sched.async_scheduler import AsyncScheduler

from memento.config import MementoConfig
from memento.vllm.checks import (
    SUPPORTED_BACKENDS,
    UNVERIFIED_BACKEND_ENV,
    V2_RUNNER_ENV,
    StartupError,
    check_attention_layers,
    check_backends,
    check_vllm_config,
)
from memento.vllm.engine import SCHEDULER, set_environment
from memento.vllm.scheduler import MementoScheduler
from memento.vllm.state import CONFIG_ENV

pytestmark = pytest.mark.vllm


def _scheduling(**changes) -> SchedulerConfig:
    return SchedulerConfig.default_factory(**{"scheduler_cls": SCHEDULER, "async_scheduling": False, **changes})


def _config(**changes) -> SimpleNamespace:
    """A VllmConfig's parts as vLLM builds them, with the plugin's defaults (prefix caching off)."""
    parts = {
        "parallel_config": ParallelConfig(),
        "cache_config": CacheConfig(enable_prefix_caching=False),
        "speculative_config": None,
        "kv_transfer_config": None,
        "use_v2_model_runner": False,
        "scheduler_config": _scheduling(),
    }
    parts.update(changes)
    return SimpleNamespace(**parts)


def test_the_plugins_own_configuration_passes():
    check_vllm_config(_config())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (lambda: {"use_v2_model_runner": True}, f"V2 model runner.*{V2_RUNNER_ENV}=0"),
        (lambda: {"speculative_config": SimpleNamespace(method="ngram")}, "refuses speculative decoding"),
        (lambda: {"cache_config": CacheConfig(enable_prefix_caching=True)}, "refuses prefix caching"),
        (lambda: {"parallel_config": ParallelConfig(pipeline_parallel_size=2)}, "refuses pipeline parallelism"),
        (
            lambda: {"parallel_config": ParallelConfig(tensor_parallel_size=2, decode_context_parallel_size=2)},
            "refuses decode context parallelism",
        ),
        (
            lambda: {"parallel_config": ParallelConfig(prefill_context_parallel_size=2)},
            "refuses prefill context parallelism",
        ),
        (lambda: {"parallel_config": ParallelConfig(enable_dbo=True)}, "refuses dual-batch overlap"),
        (lambda: {"parallel_config": ParallelConfig(ubatch_size=2)}, "refuses dual-batch overlap / micro-batching"),
        (lambda: {"kv_transfer_config": SimpleNamespace(kv_connector="LMCacheConnectorV1")}, "refuses KV connectors"),
        (
            lambda: {"cache_config": CacheConfig(enable_prefix_caching=False, kv_offloading_size=4.0)},
            "refuses KV offloading",
        ),
        (
            lambda: {"cache_config": CacheConfig(enable_prefix_caching=False, cache_dtype="nvfp4")},
            "KV cache dtype nvfp4",
        ),
        (lambda: {"parallel_config": ParallelConfig(tensor_parallel_size=2)}, "tensor parallelism.*no multi-GPU run"),
    ],
    ids=[
        "v2-runner",
        "spec-decode",
        "prefix-caching",
        "pp",
        "dcp",
        "pcp",
        "dbo",
        "ubatch",
        "kv-connector",
        "kv-offload",
        "nvfp4",
        "tp",
    ],
)
def test_each_feature_that_breaks_packed_attention_is_refused_in_one_line(changes, message):
    with pytest.raises(StartupError, match=message) as refused:
        check_vllm_config(_config(**changes()))
    assert "\n" not in str(refused.value)


def test_set_environment_asks_for_the_v1_runner_and_leaves_a_users_choice_to_be_refused():
    config = MementoConfig(mask_delimiters=False)
    assert set_environment(config, {})[V2_RUNNER_ENV] == "0"
    assert set_environment(config, {V2_RUNNER_ENV: "1"})[V2_RUNNER_ENV] == "1"  # check_model_runner refuses it
    assert V2_RUNNER_ENV not in set_environment(None, {})


def _layer(cls: type = Attention, **impl_changes) -> Attention:
    """A vLLM attention layer (its class, not initialised: no model context) holding a real backend impl."""
    arguments = {
        "num_heads": 4,
        "head_size": 32,
        "scale": 32**-0.5,
        "num_kv_heads": 2,
        "alibi_slopes": None,
        "sliding_window": None,
        "kv_cache_dtype": "auto",
    }
    arguments.update(impl_changes)
    impl_class = arguments.pop("impl_class", TritonAttentionImpl)
    layer = cls.__new__(cls)
    layer.__dict__["impl"] = impl_class(**arguments)
    return layer


@pytest.mark.parametrize("impl_class", [TritonAttentionImpl, FlashAttentionImpl], ids=lambda c: c.__name__)
def test_plain_full_attention_layers_pass(impl_class):
    check_attention_layers({"model.layers.0.self_attn.attn": _layer(impl_class=impl_class)})


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (lambda: _layer(sliding_window=128), "sliding window"),
        (lambda: _layer(alibi_slopes=[0.5, 0.25, 0.125, 0.0625]), "ALiBi"),
        (lambda: _layer(chunk_lookback=2), "chunked local attention"),
        (lambda: _layer(attn_type=AttentionType.ENCODER_ONLY), "encoder_only attention"),
        (lambda: _layer(ChunkedLocalAttention), "is ChunkedLocalAttention"),
    ],
    ids=["sliding-window", "alibi", "chunk-lookback", "encoder-only", "chunked-local-class"],
)
def test_layers_whose_kernel_reads_key_positions_are_refused(layer, message):
    with pytest.raises(StartupError, match=f"layer model.layers.1.self_attn.attn .*{message}.*full-attention"):
        check_attention_layers({"model.layers.0.self_attn.attn": _layer(), "model.layers.1.self_attn.attn": layer()})


def test_only_the_backends_the_rewrite_feeds_are_accepted():
    check_backends(SUPPORTED_BACKENDS, environ={UNVERIFIED_BACKEND_ENV: "FLASHINFER"})
    with pytest.raises(StartupError, match=r"drives the attention backends CPU_ATTN, FLASH_ATTN.*uses FLASHMLA"):
        check_backends(["FLASH_ATTN", "FLASHMLA"])


def test_30_4_flashinfer_runs_only_with_the_opt_in_that_says_it_is_unverified():
    check_backends(["CPU_ATTN", "FLASH_ATTN", "TRITON_ATTN"], environ={})
    with pytest.raises(StartupError) as refused:
        check_backends(["FLASHINFER"], environ={})
    assert str(refused.value) == (
        "attention backend FLASHINFER is unverified under memento's vLLM plugin (none of its code has run with it "
        "yet): set MEMENTO_ALLOW_UNVERIFIED_BACKEND=FLASHINFER to use it anyway, or pick FLASH_ATTN or TRITON_ATTN "
        "with --attention-backend"
    )
    check_backends(["FLASHINFER"], environ={UNVERIFIED_BACKEND_ENV: "flashinfer"})
    with pytest.raises(StartupError, match="FLASHINFER is unverified"):  # the engine's config says it, too
        check_vllm_config(_config(attention_config=AttentionConfig(backend="FLASHINFER")))


class SubclassedScheduler(MementoScheduler):
    """A user's scheduler built on memento's: chunks are still cut after each closing token."""


@pytest.fixture
def plugin_on(monkeypatch):
    monkeypatch.setenv(CONFIG_ENV, '{"enable": true, "keep_last_n_blocks": 0, "mask_delimiters": false}')


def test_30_2_async_scheduling_is_refused_at_engine_start(plugin_on):
    check_vllm_config(_config(scheduler_config=_scheduling()))
    with pytest.raises(StartupError) as refused:
        check_vllm_config(_config(scheduler_config=_scheduling(async_scheduling=True)))
    assert str(refused.value).startswith("memento's vLLM plugin refuses async scheduling (--async-scheduling): ")
    assert str(refused.value).endswith("pass --no-async-scheduling (memento serve and offline_llm do)")


@pytest.mark.parametrize(
    "scheduler", [None, "vllm.v1.core.sched.scheduler.Scheduler", AsyncScheduler, "nowhere.Scheduler"]
)
def test_30_2_a_scheduler_other_than_mementos_is_refused_while_the_plugin_is_on(plugin_on, monkeypatch, scheduler):
    with pytest.raises(StartupError, match=r"refuses --scheduler-cls .*only memento's scheduler ends prefill chunks"):
        check_vllm_config(_config(scheduler_config=_scheduling(scheduler_cls=scheduler)))
    monkeypatch.delenv(CONFIG_ENV)  # plain vLLM: any scheduler
    check_vllm_config(_config(scheduler_config=_scheduling(scheduler_cls=scheduler)))


@pytest.mark.parametrize("scheduler", [SubclassedScheduler, f"{__name__}.SubclassedScheduler", MementoScheduler])
def test_30_2_mementos_scheduler_and_its_subclasses_are_accepted(plugin_on, scheduler):
    check_vllm_config(_config(scheduler_config=_scheduling(scheduler_cls=scheduler)))


def test_30_6_the_v2_model_runner_is_refused_wherever_it_is_built(plugin_on, monkeypatch):
    """vLLM builds it where `VllmConfig.use_v2_model_runner` holds, which some features force whatever the
    environment says; with the plugin on, building one (GPU, or the CPU one that subclasses it) is refused."""
    from vllm.v1.worker.cpu.model_runner import CPUModelRunner as CPUModelRunnerV2
    from vllm.v1.worker.gpu.model_runner import GPUModelRunner as GPUModelRunnerV2

    from memento.vllm import plugin

    monkeypatch.setenv(V2_RUNNER_ENV, "0")
    plugin.register()
    for runner in (GPUModelRunnerV2, CPUModelRunnerV2):
        with pytest.raises(StartupError, match=rf"refuses vLLM's V2 model runner .*set {V2_RUNNER_ENV}=0") as refused:
            runner(SimpleNamespace(), "cpu")
        assert "\n" not in str(refused.value)


def test_a_real_engine_config_passes_with_mementos_arguments_and_is_refused_with_vllms_defaults(plugin_on):
    """The table read from the `VllmConfig` vLLM builds (every default resolved), as the plugin reads it at start."""
    from vllm.engine.arg_utils import EngineArgs

    from memento.toy import CHECKPOINT
    from memento.vllm.engine import engine_arguments

    config = EngineArgs(
        model=str(CHECKPOINT),
        enforce_eager=True,
        gpu_memory_utilization=0.2,
        **engine_arguments(MementoConfig(mask_delimiters=False)),
    ).create_engine_config()
    check_vllm_config(config)
    config.scheduler_config.scheduler_cls = None  # vLLM's default scheduler, as under a plain `vllm serve`
    with pytest.raises(StartupError, match="refuses --scheduler-cls vLLM's default scheduler"):
        check_vllm_config(config)
    config.scheduler_config.scheduler_cls = SCHEDULER
    config.cache_config.enable_prefix_caching = True  # vLLM's default
    with pytest.raises(StartupError, match="refuses prefix caching"):
        check_vllm_config(config)


@pytest.mark.parametrize(
    ("flags", "changes"),
    [
        (["--enable-prefix-caching"], lambda: {"cache_config": CacheConfig(enable_prefix_caching=True)}),
        (["-pp", "2"], lambda: {"parallel_config": ParallelConfig(pipeline_parallel_size=2)}),
        (["--async-scheduling"], lambda: {"scheduler_config": _scheduling(async_scheduling=True)}),
        (["--scheduler-cls", "x.Y"], lambda: {"scheduler_config": _scheduling(scheduler_cls="x.Y")}),
        (["--attention-backend", "FLASHINFER"], lambda: {"attention_config": AttentionConfig(backend="FLASHINFER")}),
    ],
    ids=["prefix-caching", "pp", "async", "scheduler", "flashinfer"],
)
def test_the_command_line_and_the_engine_config_are_refused_by_the_same_rule_in_the_same_words(
    plugin_on, flags, changes
):
    """`memento serve`'s pre-check (vLLM's parse of its argv) and the plugin at engine start share one table."""
    from memento.vllm.arguments import engine_arguments
    from memento.vllm.checks import check_engine_arguments
    from memento.vllm.engine import server_flags

    memento_flags = server_flags(MementoConfig(mask_delimiters=False))
    with pytest.raises(StartupError) as before_vllm:
        check_engine_arguments(engine_arguments(["--model", "m", *memento_flags, *flags]))
    with pytest.raises(StartupError) as at_engine_start:
        check_vllm_config(_config(**changes()))
    assert str(before_vllm.value) == str(at_engine_start.value)


@pytest.mark.parametrize(
    ("cache_dtype", "model_dtype", "refused"),
    [
        ("bfloat16", "float16", True),
        ("float16", "float32", True),
        ("float16", "bfloat16", True),
        ("bfloat16", "bfloat16", False),
        ("float16", "float16", False),
        ("auto", "float32", False),
        ("fp8", "bfloat16", False),
    ],
)
def test_an_explicit_float_kv_cache_dtype_other_than_the_models_is_refused(cache_dtype, model_dtype, refused):
    """A bf16 cache under an fp16 model passes the start-up self-check (it probes in the cache's dtype) but the
    forward hands CUDA's cache write keys in the model dtype, which it does not convert: refused before that."""
    import torch

    config = _config(
        cache_config=CacheConfig(enable_prefix_caching=False, cache_dtype=cache_dtype),
        model_config=SimpleNamespace(dtype=getattr(torch, model_dtype)),
    )
    if refused:
        with pytest.raises(StartupError, match=f"KV cache dtype {cache_dtype} with a {model_dtype} model"):
            check_vllm_config(config)
    else:
        check_vllm_config(config)


def test_the_kv_cache_dtype_mismatch_is_refused_from_the_command_line_before_vllm_starts(plugin_on):
    from memento.vllm.arguments import engine_arguments
    from memento.vllm.checks import check_engine_arguments
    from memento.vllm.engine import server_flags

    flags = ["--model", "m", *server_flags(MementoConfig(mask_delimiters=False)), "--dtype", "half"]
    with pytest.raises(StartupError, match="KV cache dtype bfloat16 with a half model"):
        check_engine_arguments(engine_arguments([*flags, "--kv-cache-dtype", "bfloat16"]))
    check_engine_arguments(engine_arguments([*flags, "--kv-cache-dtype", "float16"]))

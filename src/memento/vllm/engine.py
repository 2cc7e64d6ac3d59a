"""Engine arguments that turn the plugin on, shared by `memento serve --backend vllm`, tests and benches."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from memento.config import MementoConfig
from memento.vllm.checks import V2_RUNNER_ENV
from memento.vllm.state import CONFIG_ENV, describe

SCHEDULER = "memento.vllm.scheduler.MementoScheduler"
COUNTING_SCHEDULER = "memento.vllm.scheduler.CountingScheduler"
LOGITS_PROCESSOR = "memento.vllm.logits:MaxBlockTokensLogitsProcessor"
REQUEST_VALIDATOR = "memento.vllm.validation:RequestValidator"  # per-request config checked at admission
STREAM_VALIDATOR = "memento.vllm.validation.ValidateStreamedRequests"  # the same, before a stream's response starts
RESPONSES = "memento.vllm.responses.MementoResponses"  # STREAM_VALIDATOR, reasoning_content, usage.memento
REASONING_PARSER, REASONING_MODULE = "memento", "memento.vllm.reasoning"


def engine_arguments(config: MementoConfig | None) -> dict[str, Any]:
    """vLLM engine keyword arguments for memento masking (`config` None = plain vLLM, counted).

    Prefix caching is off with masking (masked KV must not be reused as unmasked); the custom
    scheduler subclasses the synchronous `Scheduler`, so vLLM runs without async scheduling,
    which would otherwise schedule a step before the previous step's tokens are known.
    """
    if config is None:
        return {"scheduler_cls": COUNTING_SCHEDULER, "async_scheduling": False}
    return {
        "scheduler_cls": SCHEDULER,
        "logits_processors": [REQUEST_VALIDATOR, LOGITS_PROCESSOR],
        "enable_prefix_caching": False,
        "async_scheduling": False,
    }


def server_flags(config: MementoConfig | None) -> list[str]:
    """The same arguments as flags of vLLM's OpenAI-compatible server."""
    flags: list[str] = []
    for name, value in engine_arguments(config).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            flags += [flag, *value]
        else:
            flags += [flag, str(value)]
    if config is not None:
        flags += ["--middleware", RESPONSES]  # it wraps STREAM_VALIDATOR
        flags += ["--reasoning-parser", REASONING_PARSER, "--reasoning-parser-plugin", REASONING_MODULE]
    return flags


def set_environment(config: MementoConfig | None, environment: dict[str, str] | None = None) -> dict[str, str]:
    """Put the engine-wide config where every vLLM process's plugin reads it (before vLLM starts).

    With masking on, vLLM's V1 model runner is asked for (the one the plugin's hooks reach; on CUDA
    vLLM would otherwise pick V2); a V2 runner the user forces is refused at start-up.
    """
    environment = os.environ if environment is None else environment
    if config is None:
        environment.pop(CONFIG_ENV, None)
    else:
        environment[CONFIG_ENV] = describe(config)
        environment.setdefault(V2_RUNNER_ENV, "0")
    return environment  # type: ignore[return-value]


def offline_llm(model: str | Path, config: MementoConfig | None, **llm_arguments: Any) -> Any:
    """A `vllm.LLM` with memento masking (`config` None = plain vLLM with the counting scheduler).

    Call before vLLM starts anything in this process: the plugin is registered once per process, from
    the environment this sets. Extra ``logits_processors`` are kept after the plugin's.
    """
    set_environment(config)
    from vllm import LLM

    arguments = engine_arguments(config)
    extra_processors = llm_arguments.pop("logits_processors", [])
    processors = [*arguments.get("logits_processors", []), *extra_processors]
    if processors:
        arguments["logits_processors"] = processors
    return LLM(model=str(model), **arguments, **llm_arguments)

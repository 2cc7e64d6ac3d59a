"""The ``vllm.general_plugins`` entry point, loaded by vLLM in every process."""

from __future__ import annotations

import functools
import logging
from typing import Any

from memento.vllm.checks import StartupError, check_engine
from memento.vllm.refusals import EngineFeatures, refusal
from memento.vllm.state import engine_config

logger = logging.getLogger(__name__)


def register() -> None:
    """Install memento masking when ``MEMENTO_BLOCK_MASKING_CONFIG`` is set; otherwise change nothing.

    No attention backend is replaced: the model runner's hooks rewrite the inputs every supported
    backend (`memento.vllm.checks.SUPPORTED_BACKENDS`) reads, and refuse any other at start-up.
    """
    config = engine_config()  # validates the JSON in every process, so a bad config fails at start-up
    if config is None:
        return
    check_engine()  # the tested vLLM release, its V1 model runner (the one the hooks reach)
    from memento.vllm.runtime import patch_model_runner

    patch_model_runner()
    refuse_v2_model_runner()
    logger.info("memento block masking on: %s", config.to_dict())


def refuse_v2_model_runner() -> None:
    """Make vLLM's V2 model runner refuse to be built while the plugin is on, whatever chose it.

    vLLM 0.32 builds it (its GPU runner, and the CPU one, a subclass) wherever `VllmConfig.use_v2_model_runner`
    holds: the environment variable, or features that force it (HiSparse, watermarking) even when it says 0.
    Its steps bypass the V1 hooks, so attention would silently see evicted blocks.
    """
    from vllm.v1.worker.gpu.model_runner import GPUModelRunner

    original_init = GPUModelRunner.__init__
    if getattr(original_init, "_memento", False):
        return

    @functools.wraps(original_init)
    def init(self: Any, vllm_config: Any, *args: Any, **kwargs: Any) -> None:
        if engine_config() is not None:
            raise StartupError(refusal(EngineFeatures(v2_model_runner=True)))
        original_init(self, vllm_config, *args, **kwargs)

    init._memento = True  # type: ignore[attr-defined]
    GPUModelRunner.__init__ = init

"""The ``vllm.general_plugins`` entry point, loaded by vLLM in every process."""

from __future__ import annotations

import logging

from memento.vllm.checks import check_engine
from memento.vllm.state import engine_config

logger = logging.getLogger(__name__)


def register() -> None:
    """Install memento masking when ``MEMENTO_BLOCK_MASKING_CONFIG`` is set; otherwise change nothing."""
    config = engine_config()  # validates the JSON in every process, so a bad config fails at start-up
    if config is None:
        return
    check_engine()  # the tested vLLM release, its V1 model runner (the one the hooks reach)
    from vllm.platforms import current_platform
    from vllm.v1.attention.backends.registry import AttentionBackendEnum, register_backend

    if not current_platform.is_cpu():
        # Only CPU_ATTN gets the packed-cache metadata builder; a GPU backend left as is would attend to
        # evicted keys and write past the blocks given back.
        raise RuntimeError(
            "memento's vLLM plugin drives vLLM's CPU attention backend only (the one verified); on this "
            f"platform ({current_platform.device_name}) use the HF backend (memento generate / MementoGenerator)"
        )

    from memento.vllm.runtime import patch_model_runner

    register_backend(AttentionBackendEnum.CPU_ATTN, "memento.vllm.attention.MementoAttentionBackend")
    patch_model_runner()
    logger.info("memento block masking on: %s", config.to_dict())

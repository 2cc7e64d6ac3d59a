"""The ``vllm.general_plugins`` entry point, loaded by vLLM in every process."""

from __future__ import annotations

import logging

from memento.vllm.checks import check_engine
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
    logger.info("memento block masking on: %s", config.to_dict())

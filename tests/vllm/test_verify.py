"""`memento verify`: passes on the toy checkpoint with vLLM's CPU backend, fails (non-zero, the difference
printed) when the plugin is broken, and `memento serve`'s GPU gate records a pass once per configuration."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from memento.toy import CHECKPOINT

pytestmark = pytest.mark.vllm
KEYS = {"passed", "backend", "dtype", "max_abs_logprob_diff", "tokens_equal", "evictions", "blocks_released"}
BROKEN_MOVER = """
import sys
import memento.vllm.attention as attention
moving = attention.move_tokens
def skips_one_token(caches, isa, sources, targets):  # the first token of every move stays where it was
    moving(caches, isa, sources[1:], targets[1:])
attention.move_tokens = skips_one_token
from memento.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _verify(*arguments: str, program: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "memento.cli"] if program is None else [sys.executable, "-c", program]
    return subprocess.run(
        [*command, "verify", "--model", str(CHECKPOINT), "--backend", "vllm", *arguments],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )


@pytest.mark.slow
def test_verify_passes_on_the_toy_checkpoint():
    process = _verify("--json")
    verdict = json.loads(process.stdout.strip().splitlines()[-1])
    assert process.returncode == 0, process.stderr[-2000:]
    assert verdict.keys() >= KEYS
    assert verdict["passed"] is True and verdict["tokens_equal"] is True
    assert verdict["backend"] == "vllm" and verdict["dtype"] == "float32"
    assert verdict["attention_backend"] == "CPU_ATTN"
    assert verdict["max_abs_logprob_diff"] < 1e-4
    assert verdict["evictions"] >= 16 and verdict["blocks_released"] > 0


@pytest.mark.slow
def test_verify_fails_with_the_difference_when_the_mover_skips_a_token():
    process = _verify("--json", "--weights", "checkpoint", program=BROKEN_MOVER)
    verdict = json.loads(process.stdout.strip().splitlines()[-1])
    assert process.returncode == 1
    assert verdict["passed"] is False and verdict["max_abs_logprob_diff"] > 1e-2
    assert "FAILED, largest log-prob difference" in process.stderr


def test_bad_input_is_one_line_and_exit_2():
    process = _verify("--dtype", "float64")
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [
        "memento verify: error: --dtype must be one of float32, float16, bfloat16, got 'float64'"
    ]


@pytest.mark.slow
def test_the_serve_gate_runs_verify_once_per_configuration(tmp_path, monkeypatch):
    from memento.vllm.verified import ensure_verified, verified_file

    monkeypatch.setenv("MEMENTO_CACHE", str(tmp_path))
    verdict, ran = ensure_verified(CHECKPOINT, "float32")
    assert ran and verdict["passed"] and verified_file().is_file()
    again, ran_again = ensure_verified(CHECKPOINT, "float32")
    assert not ran_again and again == verdict

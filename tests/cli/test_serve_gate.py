"""`memento serve`'s GPU gate verifies the configuration vLLM will serve: the whole command line read by vLLM's
own parser (aliases such as ``half``, ``--flag=value``, the last of a repeated flag), handed to `memento verify`;
what verify cannot check is refused in one line (issue 34, item 3).

The CUDA machine is simulated (``torch.cuda.is_available``), `memento verify` is recorded instead of run, and
the final exec of vLLM is replaced by a record of its argv: everything else is the real `memento serve`.
"""

from __future__ import annotations

import pytest
import torch

from memento.cli import main
from memento.toy import CHECKPOINT
from tests.servers import free_port

pytestmark = pytest.mark.vllm  # vLLM's own argument parser reads the command line


@pytest.fixture
def gate(monkeypatch):
    """A CUDA machine as the gate sees it; records what it would verify and the argv it would exec."""
    record: dict[str, list] = {"verified": [], "served": []}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def ensure_verified(*arguments, **keywords):
        record["verified"].append((arguments, keywords))
        return {"attention_backend": arguments[2], "max_abs_logprob_diff": 0.0}, True

    monkeypatch.setattr("memento.vllm.verified.ensure_verified", ensure_verified)
    monkeypatch.setattr("memento.vllm.verified.check_cache_directory", lambda: None)
    monkeypatch.setattr("memento.vllm.serve.serve", lambda argv, environment: record["served"].append(argv))
    return record


def _serve(*flags: str) -> int:
    """`memento serve` on the toy checkpoint with `flags` (memento's, then `--` and vLLM's)."""
    return main(["serve", "--backend", "vllm", "--model", str(CHECKPOINT), "--port", str(free_port()), *flags])


def _verified(gate) -> list[tuple]:
    """(dtype, attention backend, enforce_eager, block size) of each configuration the gate verified."""
    return [arguments[1:5] for arguments, _ in gate["verified"]]


def test_34_3_the_gate_verifies_dtype_aliases_and_the_last_of_a_repeated_flag_as_vllm_reads_them(gate):
    assert _serve("--dtype", "half") == 0
    assert _serve("--block-size", "64", "--", "--block-size", "32", "--dtype", "float16") == 0
    assert _serve("--dtype", "bfloat16", "--", "--attention-backend=triton_attn", "--enforce-eager") == 0
    assert _serve("--dtype", "float", "--", "-ac.backend=FLASH_ATTN", "--enforce-eager", "--no-enforce-eager") == 0
    assert _verified(gate) == [
        ("float16", None, False, None),
        ("float16", None, False, 32),
        ("bfloat16", "TRITON_ATTN", True, None),
        ("float32", "FLASH_ATTN", False, None),
    ]
    assert len(gate["served"]) == 4
    keywords = gate["verified"][0][1]
    assert keywords["kv_cache_dtype"] == "auto" and keywords["memento_config"].enable


def test_34_3_a_dtype_the_gate_cannot_verify_is_refused_in_one_line_before_anything_runs(gate, capsys):
    assert _serve("--dtype", "fp8") == 2
    assert _serve("--dtype", "float32", "--", "--dtype=int8") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert all(
        line.startswith("memento serve: error: vLLM's server flags: argument --dtype: invalid choice") for line in lines
    )
    assert gate == {"verified": [], "served": []}


def test_34_9_a_kv_cache_dtype_verify_does_not_check_is_refused_in_one_line_on_any_platform(gate, monkeypatch, capsys):
    assert _serve("--", "--kv-cache-dtype=fp8") == 2
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # and on vLLM's CPU build
    assert _serve("--", "--kv-cache-dtype", "auto", "--kv-cache-dtype", "fp8_e5m2") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "memento serve: error: --kv-cache-dtype fp8: memento verify checks only the model's own KV dtype so far; "
        "--skip-verify serves anyway, at the risk of wrong attention",
        "memento serve: error: --kv-cache-dtype fp8_e5m2: memento verify checks only the model's own KV dtype so "
        "far; --skip-verify serves anyway, at the risk of wrong attention",
    ]
    assert gate == {"verified": [], "served": []}
    assert _serve("--skip-verify", "--", "--kv-cache-dtype=fp8") == 0  # the user's call, said on stderr
    assert len(gate["served"]) == 1 and gate["verified"] == []


def test_a_served_rule_verify_cannot_check_is_said_in_one_line(gate, capsys):
    restart = '{"enable": true, "mask_delimiters": false, "restart_mode": true}'
    assert _serve("--block-masking-config", restart) == 0
    assert gate["verified"][0][1]["memento_config"].restart_mode and len(gate["served"]) == 1
    err = capsys.readouterr().err
    assert "memento: the served masking config's own rule is not checked (restart_mode cannot return prompt" in err
    assert _serve("--block-masking-config", restart.replace("true}", "false}")) == 0
    assert "not checked" not in capsys.readouterr().err

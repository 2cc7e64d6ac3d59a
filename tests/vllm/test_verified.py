"""The record of configurations `memento verify` passed (`memento.vllm.verified`): keyed by everything on the
attention path (issue 34, item 3), robust to a damaged record and an unusable cache folder (item 4).

`memento verify` itself is replaced by a stand-in that prints a passing verdict and counts its runs (the real
one is tests/vllm/test_verify.py's); every file is real, under a temporary MEMENTO_CACHE.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from memento.cli import main
from memento.config import MementoConfig
from memento.errors import UsageError
from memento.toy import CHECKPOINT
from memento.vllm import verified
from tests.servers import free_port


@pytest.fixture
def verify_runs(monkeypatch, tmp_path):
    """A cache under tmp_path and `memento verify` replaced by a passing stand-in; yields its command lines."""
    monkeypatch.setenv("MEMENTO_CACHE", str(tmp_path / "cache"))
    runs: list[list[str]] = []
    real_run = subprocess.run

    def run(command, *arguments, **keywords):
        if list(command[1:4]) != ["-m", "memento.cli", "verify"]:
            return real_run(command, *arguments, **keywords)
        runs.append(list(command))
        verdict = {"passed": True, "attention_backend": "FLASH_ATTN", "max_abs_logprob_diff": 0.01}
        return subprocess.CompletedProcess(command, 0, stdout=json.dumps(verdict) + "\n", stderr="")

    monkeypatch.setattr(verified.subprocess, "run", run)
    return runs


def test_34_3_a_pass_is_reused_only_for_the_same_attention_path(verify_runs):
    masking = MementoConfig(mask_delimiters=False)
    verified.ensure_verified(CHECKPOINT, "float16", memento_config=masking)
    assert verified.ensure_verified(CHECKPOINT, "float16", memento_config=masking)[1] is False  # recorded
    changed = [
        {"block_size": 32},
        {"dtype": "bfloat16"},
        {"attention_backend": "TRITON_ATTN"},
        {"enforce_eager": True},
        {"kv_cache_dtype": "fp8"},
        {"memento_config": MementoConfig(mask_delimiters=True)},
        {"memento_config": MementoConfig(mask_delimiters=False, keep_last_n_blocks=2)},
    ]
    for change in changed:
        arguments = {"dtype": "float16", "memento_config": masking, **change}
        assert verified.ensure_verified(CHECKPOINT, **arguments)[1] is True, change
    assert len(verify_runs) == 1 + len(changed)
    recorded = json.loads(verified.verified_file().read_text())[0]["configuration"]
    assert recorded["memento"] and len(recorded["plugin"]) == 16
    assert recorded["masking"] == masking.to_dict() and recorded["kv_cache_dtype"] == "auto"


@pytest.mark.parametrize("content", ["[1]", "null", '"x"', "{}", "not json", '[{"configuration": 1}]'])
def test_34_4_a_damaged_record_is_ignored_in_one_line_and_rewritten(verify_runs, capsys, content):
    file = verified.verified_file()
    file.parent.mkdir(parents=True)
    file.write_text(content)
    verdict, ran = verified.ensure_verified(CHECKPOINT, "bfloat16")
    assert ran and verdict["passed"] and len(verify_runs) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"memento: ignoring the damaged {file} (") and line.endswith("rewritten after the next pass")
    (entry,) = json.loads(file.read_text())
    assert entry["configuration"]["dtype"] == "bfloat16"
    assert verified.ensure_verified(CHECKPOINT, "bfloat16")[1] is False  # the rewritten record is read back


@pytest.mark.parametrize("kind", ["file", "folder-in-place-of-record"])
def test_34_4_an_unusable_cache_folder_is_named_before_memento_verify_runs(
    verify_runs, monkeypatch, tmp_path, capsys, kind
):
    cache = tmp_path / "cache"
    if kind == "file":
        cache.write_text("not a folder")
        expected = f"MEMENTO_CACHE={cache} is a file, not a directory"
    else:
        (cache / "vllm_verified.json").mkdir(parents=True)
        expected = f"MEMENTO_CACHE={cache} holds a folder where its file vllm_verified.json goes"
    with pytest.raises(UsageError, match="point MEMENTO_CACHE at a writable directory"):
        verified.check_cache_directory()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the gate runs on CUDA only
    monkeypatch.setattr("memento.vllm.serve.serve", lambda argv, environment: pytest.fail("vLLM started"))
    command = ["serve", "--backend", "vllm", "--model", str(CHECKPOINT), "--port", str(free_port())]
    assert main(command) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(f"memento serve: error: {expected}: memento serve records")
    assert verify_runs == []


def test_the_gate_hands_verify_the_served_masking_config(verify_runs):
    """verify checks the served rule beside its own two; restart_mode's it cannot (no prompt log-probs under it)."""
    served = MementoConfig(mask_delimiters=False, keep_last_n_blocks=1)
    verified.ensure_verified(CHECKPOINT, "float32", memento_config=served)
    flag = verify_runs[0].index("--block-masking-config")
    assert MementoConfig.from_json(verify_runs[0][flag + 1]) == served
    verified.ensure_verified(CHECKPOINT, "float32")  # no served config: the built-in ones only
    restart = MementoConfig(mask_delimiters=False, restart_mode=True)
    verified.ensure_verified(CHECKPOINT, "float32", memento_config=restart)
    assert ["--block-masking-config" in command for command in verify_runs] == [True, False, False]

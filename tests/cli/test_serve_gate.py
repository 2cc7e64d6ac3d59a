"""`memento serve`'s GPU gate reads vLLM's own flags as vLLM does (`--flag value` and `--flag=value`), hands
the configuration to `memento verify`, and refuses in one line what verify cannot check yet."""

from __future__ import annotations

import argparse

import pytest
import torch

from memento.cli.serve import check_gpu_configuration
from memento.errors import UsageError
from memento.toy import CHECKPOINT


def _args(*passthrough: str, block_size: int | None = None) -> argparse.Namespace:
    return argparse.Namespace(
        model=CHECKPOINT, dtype="auto", block_size=block_size, skip_verify=False, passthrough=list(passthrough)
    )


@pytest.fixture
def gate(monkeypatch):
    """A CUDA machine as the gate sees it; records what it would verify instead of running vLLM."""
    asked: list[tuple] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def ensure_verified(*arguments):
        asked.append(arguments)
        return {"attention_backend": arguments[2], "max_abs_logprob_diff": 0.0}, True

    monkeypatch.setattr("memento.vllm.verified.ensure_verified", ensure_verified)
    return asked


def test_the_gate_verifies_the_backend_eager_mode_and_block_size_it_will_serve_with(gate):
    check_gpu_configuration(_args("--attention-backend=TRITON_ATTN", "--enforce-eager", block_size=32), None)
    check_gpu_configuration(_args("--attention-backend", "FLASH_ATTN"), None)
    assert gate == [
        (CHECKPOINT, "bfloat16", "TRITON_ATTN", True, 32),
        (CHECKPOINT, "bfloat16", "FLASH_ATTN", False, None),
    ]


def test_a_kv_cache_dtype_verify_does_not_check_is_refused_in_one_line(gate):
    with pytest.raises(UsageError, match="--kv-cache-dtype fp8: memento verify checks only") as refused:
        check_gpu_configuration(_args("--kv-cache-dtype=fp8"), None)
    assert "\n" not in str(refused.value) and "--skip-verify" in str(refused.value)
    assert gate == []

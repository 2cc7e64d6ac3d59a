"""`memento serve` refuses, before vLLM starts, every engine feature the plugin would refuse once vLLM had loaded
(issue 34 item 9, issue 30 items 2 and 4): its whole command line read by vLLM's own parser, checked against
the plugin's one table (`memento.vllm.refusals`), one line and exit 2.

The real `memento serve` in this process; its last step (exec'ing vLLM) is replaced by a record of the argv.
"""

from __future__ import annotations

import pytest

from memento.cli import main
from memento.toy import CHECKPOINT
from memento.vllm.checks import UNVERIFIED_BACKEND_ENV
from memento.vllm.scheduler import MementoScheduler
from tests.servers import free_port

SPECULATIVE = '{"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_max": 3}'


class SubclassedScheduler(MementoScheduler):
    """A user's scheduler built on memento's."""


@pytest.fixture
def served(monkeypatch):
    """The argv `memento serve` would exec vLLM with, one per start that got that far."""
    started: list[list[str]] = []
    monkeypatch.setattr("memento.vllm.serve.serve", lambda argv, environment: started.append(argv))
    return started


def _serve(*vllm_flags: str) -> int:
    command = ["serve", "--backend", "vllm", "--model", str(CHECKPOINT), "--port", str(free_port())]
    return main([*command, "--dtype", "float32", "--", *vllm_flags])


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--enable-prefix-caching"], "refuses prefix caching (--enable-prefix-caching): KV computed under"),
        (["--speculative-config", SPECULATIVE], "refuses speculative decoding (--speculative-config)"),
        (["--speculative-config.method=ngram"], "refuses speculative decoding"),
        (["--tensor-parallel-size", "2"], "refuses tensor parallelism (--tensor-parallel-size 2)"),
        (["-tp=1", "-tp", "4"], "refuses tensor parallelism (--tensor-parallel-size 4)"),
        (["--pipeline-parallel-size", "2"], "refuses pipeline parallelism (--pipeline-parallel-size 2)"),
        (["--kv-cache-dtype", "nvfp4"], "refuses KV cache dtype nvfp4 (--kv-cache-dtype)"),
        (["--enable-dbo"], "refuses dual-batch overlap"),
        (["--kv-offloading-size", "4"], "refuses KV offloading"),
        (["--async-scheduling"], "refuses async scheduling (--async-scheduling): the worker would read"),
        (
            ["--scheduler-cls", "vllm.v1.core.sched.async_scheduler.AsyncScheduler"],
            "refuses --scheduler-cls vllm.v1.core.sched.async_scheduler.AsyncScheduler: only memento's scheduler",
        ),
        (["--attention-backend", "flashinfer"], f"FLASHINFER is unverified|set {UNVERIFIED_BACKEND_ENV}=FLASHINFER"),
        (["-ac.backend=FLASHINFER"], "FLASHINFER is unverified"),
        (["--attention-backend", "FLEX_ATTENTION"], "drives the attention backends CPU_ATTN|uses FLEX_ATTENTION"),
    ],
    ids=[
        "34.9-prefix-caching",
        "34.9-speculative",
        "34.9-speculative-dotted",
        "34.9-tp",
        "34.9-tp-last-wins",
        "34.9-pp",
        "34.9-nvfp4",
        "34.9-dbo",
        "34.9-kv-offload",
        "30.2-async-scheduling",
        "30.2-scheduler-cls",
        "30.4-flashinfer",
        "30.4-flashinfer-config",
        "unsupported-backend",
    ],
)
def test_refused_engine_features_end_memento_serve_in_one_line_before_vllm_starts(served, capsys, flags, expected):
    assert _serve(*flags) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("memento serve: error: ")
    assert all(part in line for part in expected.split("|")), line
    assert served == []


def test_what_the_plugin_accepts_still_starts_vllm(served, monkeypatch):
    assert _serve("--enforce-eager") == 0
    assert _serve("--enable-prefix-caching", "--no-enable-prefix-caching", "-tp", "1") == 0  # the last value wins
    assert _serve("--scheduler-cls", f"{__name__}.SubclassedScheduler") == 0
    monkeypatch.setenv(UNVERIFIED_BACKEND_ENV, "FLASHINFER")
    assert _serve("--attention-backend", "FLASHINFER") == 0
    assert len(served) == 4
    assert served[0][-1] == "--enforce-eager" and "--no-async-scheduling" in served[0]


def test_a_model_or_tokenizer_given_again_after_the_separator_is_refused(served, capsys, tmp_path):
    """vLLM serves the last --model: memento would have checked (and verified) one model and served another."""
    assert _serve("--model", str(tmp_path)) == 2
    assert _serve("--tokenizer", str(tmp_path)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("memento serve: error: --") for line in lines)
    assert f"--model {tmp_path} among vLLM's flags: memento checked {CHECKPOINT}" in lines[0]
    assert lines[1].startswith(f"memento serve: error: --tokenizer {tmp_path} among vLLM's flags")
    assert served == []
    assert _serve("--tokenizer", str(CHECKPOINT)) == 0  # the same checkpoint: nothing else served
    assert len(served) == 1


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--revision", "v2"], "--revision v2 among vLLM's flags: memento serves the local folder"),
        (["--tokenizer-revision", "main"], "--tokenizer-revision main among vLLM's flags"),
        (["--code-revision", "abc"], "--code-revision abc among vLLM's flags"),
        (["--hf-overrides", '{"num_hidden_layers": 1}'], "--hf-overrides among vLLM's flags: vLLM would serve"),
        (["--hf-config-path", "/elsewhere"], "--hf-config-path among vLLM's flags"),
    ],
)
def test_a_revision_or_changed_config_after_the_separator_is_refused(served, capsys, flags, expected):
    """vLLM would ignore a revision on memento's local folder, or serve a config memento never checked."""
    assert _serve(*flags) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memento serve: error: ") and expected in lines[0], lines
    assert served == []

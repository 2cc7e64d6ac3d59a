"""`memento verify`: passes on the toy checkpoint with vLLM's CPU backend (a memento closed while decoding, the
unmasked control told apart), fails when the plugin masks nothing or is broken, refuses bad input before
loading anything, never reports a pass when interrupted, and `memento serve`'s GPU gate records a pass once
per configuration. Two engine runs are shared by the tests that read their verdicts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from memento.cli import main
from memento.toy import CHECKPOINT
from memento.vllm import interrupts
from memento.vllm import verify as verify_module
from memento.vllm.checks import UNVERIFIED_BACKEND_ENV, StartupError, check_attention_backend, check_block_size
from memento.vllm.interrupts import Interrupted, interruptible, scratch_directory
from memento.vllm.verify import VerifyOptions, precision_environment

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
MASKING_OFF = """
import sys
from memento.vllm import state
state.RequestStates.get = lambda self, request_id, params: None  # scheduler and worker: no request is masked
from memento.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _command(program: str | None) -> list[str]:
    return [sys.executable, "-m", "memento.cli"] if program is None else [sys.executable, "-c", program]


def _verify(*arguments: str, program: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*_command(program), "verify", "--model", str(CHECKPOINT), "--backend", "vllm", *arguments],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """TMPDIR of the verify runs: their temporary model copies must be gone when they end."""
    return tmp_path_factory.mktemp("tmpdir")


@pytest.fixture(scope="module")
def passing(scratch) -> subprocess.CompletedProcess:
    return _verify("--json", env={**os.environ, "TMPDIR": str(scratch)})


@pytest.fixture(scope="module")
def masking_off() -> subprocess.CompletedProcess:
    return _verify("--json", program=MASKING_OFF)


@pytest.mark.slow
def test_verify_passes_on_the_toy_checkpoint(passing, scratch):
    verdict = _last_json(passing.stdout)
    assert passing.returncode == 0, passing.stderr[-2000:]
    assert verdict.keys() >= KEYS
    assert verdict["passed"] is True and verdict["tokens_equal"] is True and verdict["tokens_compared"] > 0
    assert verdict["backend"] == "vllm" and verdict["dtype"] == "float32"
    assert verdict["attention_backend"] == "CPU_ATTN"
    assert verdict["max_abs_logprob_diff"] < 1e-4
    assert verdict["evictions"] >= 16 and verdict["blocks_released"] > 0
    assert not list(scratch.glob("memento-verify-*"))


@pytest.mark.slow
def test_30_3_a_memento_closed_while_decoding_is_evicted(passing):
    verdict = _last_json(passing.stdout)
    assert verdict["decode_evictions"] == 2 * 4  # both configs, every sequence: the scripted memento
    assert verdict["passed"] is True


@pytest.mark.slow
def test_30_3_the_unmasked_negative_control_exceeds_the_tolerance(passing):
    verdict = _last_json(passing.stdout)
    assert verdict["can_tell"] is True
    assert verdict["control_max_abs_logprob_diff"] > 10 * verdict["tolerance"] > 10 * verdict["max_abs_logprob_diff"]


@pytest.mark.slow
def test_30_3_verify_fails_when_the_plugin_masks_nothing(masking_off):
    verdict = _last_json(masking_off.stdout)
    assert masking_off.returncode == 1, masking_off.stderr[-2000:]
    assert verdict["passed"] is False and verdict["blocks_released"] == 0
    # the "masked" run is the control: no better than it, far outside the tolerance
    assert verdict["max_abs_logprob_diff"] >= verdict["control_max_abs_logprob_diff"] > 10 * verdict["tolerance"]
    assert "FAILED, largest log-prob difference" in masking_off.stderr


@pytest.mark.slow
def test_33_5_quiet_by_default_and_the_verdict_is_stdout_s_only_line(passing):
    assert len(passing.stdout.splitlines()) == 1  # vLLM's log (stdout by default) went to stderr, at ERROR
    stderr = passing.stderr.splitlines()
    assert not [line for line in stderr if " INFO " in line]
    assert [line for line in stderr if line.startswith("memento verify: ")] == [
        "memento verify: building a random model with the checkpoint's attention geometry",
        "memento verify: running vLLM (float32, eager, block size 32)",
        "memento verify: scoring with the HF reference on cpu",
    ]
    assert len(stderr) < 15, stderr


@pytest.mark.slow
def test_verify_fails_with_the_difference_when_the_mover_skips_a_token():
    process = _verify("--json", "--weights", "checkpoint", program=BROKEN_MOVER)
    verdict = _last_json(process.stdout)
    assert process.returncode == 1
    assert verdict["passed"] is False and verdict["max_abs_logprob_diff"] > 1e-2
    assert "FAILED, largest log-prob difference" in process.stderr


def test_bad_input_is_one_line_and_exit_2():
    process = _verify("--dtype", "float64")
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [
        "memento verify: error: --dtype must be one of float32, float16, bfloat16, got 'float64'"
    ]


def _model_copy(directory: Path, edit) -> Path:
    shutil.copytree(CHECKPOINT, directory)
    config = directory / "config.json"
    config.write_text(edit(config.read_text()))
    return directory


def _sliding(text: str) -> str:
    config = json.loads(text)
    layers = config["num_hidden_layers"]
    return json.dumps({**config, "sliding_window": 64, "layer_types": ["sliding_attention"] * layers})


def _cut(text: str) -> str:
    return text[: len(text) // 2]


REFUSALS = {  # case: (model directory from tmp_path, flags, what the one line says)
    "34_5_cut_off_config_json": (lambda tmp: _model_copy(tmp / "cut", _cut), [], "config.json: not readable JSON"),
    "34_10_sliding_window_model": (lambda tmp: _model_copy(tmp / "sliding", _sliding), [], "sliding_attention"),
    "34_10_block_size_7": (lambda tmp: CHECKPOINT, ["--block-size", "7"], "--block-size must be a positive multiple"),
    "34_10_unknown_attention_backend": (lambda tmp: CHECKPOINT, ["--attention-backend", "NOPE"], "--attention-backend"),
    "served_config_masks_nothing": (
        lambda tmp: CHECKPOINT,
        ["--block-masking-config", '{"enable": false}'],
        "--block-masking-config: enable is false, so nothing is masked and nothing to verify",
    ),
    "served_config_restart_mode": (
        lambda tmp: CHECKPOINT,
        ["--block-masking-config", '{"enable": true, "mask_delimiters": false, "restart_mode": true}'],
        "--block-masking-config: restart_mode cannot return prompt log-probs, which verify compares",
    ),
    "served_config_bad_field": (
        lambda tmp: CHECKPOINT,
        ["--block-masking-config", '{"keep_last_n_blocks": "one", "mask_delimiters": false}'],
        "block_masking_config.keep_last_n_blocks",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_before_loading_anything_in_one_line_exit_2_and_json_last(case, tmp_path, monkeypatch, capsys):
    def loads(*args, **kwargs):
        raise AssertionError("verify loaded a model before refusing the input")

    monkeypatch.setattr(verify_module, "random_model", loads)
    monkeypatch.setattr(verify_module, "_run_vllm", loads)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model, flags, message = REFUSALS[case]
    code = main(["verify", "--model", str(model(tmp_path)), "--json", *flags])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert err.startswith("memento verify: error: ")
    error = _last_json(out)
    assert error["passed"] is False and message in error["error"]


def test_30_3_the_default_dtype_is_the_one_serve_runs(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert VerifyOptions(model=CHECKPOINT).dtype == "bfloat16"  # vLLM's bf16 backend (FLASH_ATTN), not fp32's
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert VerifyOptions(model=CHECKPOINT).dtype == "float32"  # CPU_ATTN serves every dtype


def test_30_3_attention_backend_and_block_size_refusals_follow_the_device():
    check_attention_backend("FLASH_ATTN", cuda=True)
    check_attention_backend("CPU_ATTN", cuda=False)
    check_attention_backend("flash_attn", cuda=True)  # vLLM reads the name in any case
    check_attention_backend("auto", cuda=False)  # vLLM's choice
    check_block_size(16, cuda=True)
    for call in (
        lambda: check_attention_backend("CPU_ATTN", cuda=True),
        lambda: check_attention_backend("FLASH_ATTN", cuda=False),
        lambda: check_block_size(16, cuda=False),
        lambda: check_block_size(24, cuda=True),
    ):
        with pytest.raises(StartupError):
            call()


def test_30_4_verify_refuses_an_unverified_backend_without_its_opt_in_before_loading():
    """The engine would refuse FLASHINFER at start without the opt-in; verify says so first, in the same words."""
    with pytest.raises(StartupError, match=f"FLASHINFER is unverified.*{UNVERIFIED_BACKEND_ENV}=FLASHINFER"):
        check_attention_backend("flashinfer", cuda=True, environ={})
    check_attention_backend("flashinfer", cuda=True, environ={UNVERIFIED_BACKEND_ENV: "FLASHINFER"})


def test_30_3_fp32_on_cuda_is_checked_in_ieee_precision():
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32, torch.get_float32_matmul_precision()
    try:
        matmul.allow_tf32 = cudnn.allow_tf32 = True
        environ: dict[str, str] = {}
        precision_environment("bfloat16", cuda=True, environ=environ)
        assert environ == {} and matmul.allow_tf32
        precision_environment("float32", cuda=True, environ=environ)
        assert environ == {"TRITON_F32_DEFAULT": "ieee"}  # Triton's fp32 tl.dot (TRITON_ATTN) would use TF32
        assert not matmul.allow_tf32 and not cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "highest"
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


def test_34_10_an_interrupt_swallowed_by_library_code_still_stops_the_check():
    # what the process had: Python's default handler, or SIG_IGN when started as a background job
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted), interruptible() as signals:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here
        except BaseException:  # what a library catching everything would do
            pass
        with pytest.raises(Interrupted):
            signals.raise_if_interrupted()
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_34_10_a_second_signal_does_not_cut_the_clean_up_short(tmp_path, monkeypatch):
    monkeypatch.setattr(interrupts.tempfile, "tempdir", str(tmp_path))
    removing = shutil.rmtree

    def interrupted_removal(path, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # while the folder is being removed
        time.sleep(0.5)
        removing(path, **kwargs)

    monkeypatch.setattr(interrupts.shutil, "rmtree", interrupted_removal)
    with pytest.raises(Interrupted), interruptible() as signals, scratch_directory(signals) as scratch:
        (scratch / "model.safetensors").write_bytes(b"weights")
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    assert signals.received == [signal.SIGINT, signal.SIGTERM]
    assert not list(tmp_path.glob("memento-verify-*"))


def test_34_10_a_signal_that_comes_only_during_the_clean_up_still_means_no_verdict(tmp_path, monkeypatch):
    """The check itself finished; SIGTERM arrives while its temporary folder is removed (signals deferred).
    Leaving `interruptible` must still raise, or the caller would go on to report the verdict."""
    monkeypatch.setattr(interrupts.tempfile, "tempdir", str(tmp_path))
    removing = shutil.rmtree

    def interrupted_removal(path, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        removing(path, **kwargs)

    monkeypatch.setattr(interrupts.shutil, "rmtree", interrupted_removal)
    reported, handler = [], signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted, match="SIGTERM"):
        with interruptible() as signals, scratch_directory(signals) as scratch:
            (scratch / "model.safetensors").write_bytes(b"weights")
        reported.append("verdict")  # what run_verify does next
    assert reported == [] and signals.received == [signal.SIGTERM]
    assert not list(tmp_path.glob("memento-verify-*"))
    assert signal.getsignal(signal.SIGTERM) is handler  # restored


def _start(tmp_path: Path, *arguments: str) -> tuple[subprocess.Popen, Path, Path]:
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    process = subprocess.Popen(
        [*_command(None), "verify", "--model", str(CHECKPOINT), "--json", *arguments],
        stdout=out.open("w"),
        stderr=err.open("w"),
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    return process, out, err


def _wait_for(condition, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_34_10_sigterm_removes_the_temporary_model_copy(tmp_path):
    process, out, _ = _start(tmp_path)
    _wait_for(lambda: list(tmp_path.glob("memento-verify-*/model.safetensors")))
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM
    assert not list(tmp_path.glob("memento-verify-*"))
    assert _last_json(out.read_text()) == {"passed": False, "error": "interrupted by SIGTERM; no verdict"}


@pytest.mark.slow
def test_34_10_sigint_while_vllm_runs_never_reports_a_pass(tmp_path):
    process, out, err = _start(tmp_path)
    _wait_for(lambda: "memento verify: running vLLM" in err.read_text())
    time.sleep(3)  # inside vLLM: engine start or decoding
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130
    assert '"passed": true' not in out.read_text()
    assert _last_json(out.read_text())["passed"] is False
    assert not list(tmp_path.glob("memento-verify-*"))


@pytest.mark.slow
def test_the_serve_gate_runs_verify_once_per_configuration(tmp_path, monkeypatch):
    from memento.vllm.verified import ensure_verified, verified_file

    monkeypatch.setenv("MEMENTO_CACHE", str(tmp_path))
    verdict, ran = ensure_verified(CHECKPOINT, "float32")
    assert ran and verdict["passed"] and verified_file().is_file()
    again, ran_again = ensure_verified(CHECKPOINT, "float32")
    assert not ran_again and again == verdict


def test_34_5_the_serve_gate_names_why_verify_could_not_run(tmp_path, monkeypatch):
    from memento.vllm.verified import ensure_verified, verified_file

    monkeypatch.setenv("MEMENTO_CACHE", str(tmp_path))
    with pytest.raises(StartupError, match=r"could not run .*--block-size must be a positive multiple of 32"):
        ensure_verified(CHECKPOINT, "float32", block_size=7)
    assert not verified_file().exists()


def test_30_3_the_serve_gate_refuses_a_verify_that_cannot_tell(tmp_path, monkeypatch):
    from memento.vllm import verified

    monkeypatch.setenv("MEMENTO_CACHE", str(tmp_path))
    verdict = {"passed": False, "can_tell": False, "control_max_abs_logprob_diff": 0.05, "tolerance": 0.1}
    printed = subprocess.CompletedProcess([], 1, stdout=json.dumps(verdict) + "\n", stderr="")
    monkeypatch.setattr(verified.subprocess, "run", lambda *args, **kwargs: printed)
    with pytest.raises(StartupError, match=r"could not tell masked from unmasked attention.*off by only 0\.05"):
        verified.ensure_verified(CHECKPOINT, "bfloat16")
    assert not verified.verified_file().exists()

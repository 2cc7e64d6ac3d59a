"""The vllm and openai backends give the hf backend's samples under greedy decoding (toy model, CPU).

The openai backend talks to a real `memento serve` on 127.0.0.1 (memento, no_eviction and restart through
``vllm_xargs``); the vllm backend runs the offline engine in a subprocess, as `memento eval
--backend vllm`, keeping vLLM's process-wide settings out of the test runner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memento.eval.evaluate import run_eval
from memento.eval.run.options import EvalOptions
from memento.toy import CHECKPOINT
from tests.servers import serving

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

COMMON = {
    "model": str(CHECKPOINT),
    "benchmark": "toy",
    "limit": 3,
    "samples": 1,
    "temperature": 0.0,
    "max_new_tokens": 500,
    "modes": "memento,no_eviction,restart",
}
SAME = ("correct", "answer", "status", "finish_reason", "blocks", "tokens", "prompt_tokens", "kv_peak_tokens",
        "kv_peak_bytes", "kv_auc_gb_ktok", "well_formed")  # fmt: skip
STARTUP_S = 600


def _samples(directory: Path) -> dict[tuple, dict]:
    records = [json.loads(line) for line in (directory / "samples.jsonl").read_text().splitlines()]
    return {(r["mode"], r["id"], r["sample"]): r for r in records}


def _assert_same_samples(mine: dict[tuple, dict], reference: dict[tuple, dict]) -> None:
    assert mine.keys() == reference.keys() and len(mine) == 9
    for key, record in mine.items():
        expected = reference[key]
        assert record["response"] == expected["response"].removesuffix("<|im_end|>"), key  # vLLM drops the stop text
        assert {k: record[k] for k in SAME} == {k: expected[k] for k in SAME}, key
    assert any(r["kv_peak_tokens"] < 0.5 * reference[("no_eviction", *k[1:])]["kv_peak_tokens"]
               for k, r in mine.items() if k[0] == "memento")  # fmt: skip


@pytest.fixture(scope="module")
def hf_reference(tmp_path_factory) -> dict[tuple, dict]:
    output = tmp_path_factory.mktemp("hf")
    run_eval(EvalOptions(**COMMON, backend="hf", output=str(output)), progress=False)
    return _samples(output)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> str:
    """`memento serve` (engine default: eviction) on a free port; yields its base URL."""
    arguments = ["--backend", "vllm", "--model", str(CHECKPOINT), "--dtype", "float32", "--max-model-len", "1024"]
    arguments += ["--block-size", "32", "--num-blocks", "64", "--block-masking-config"]
    arguments.append('{"enable": true, "keep_last_n_blocks": 0, "mask_delimiters": false}')
    with serving(arguments, tmp_path_factory.mktemp("serve"), startup_s=STARTUP_S) as (_, base_url):
        yield base_url


def _assert_viewable(output: Path, summary: dict) -> None:
    """`memento eval view` reads the run: every sample, each with its KV sawtooth."""
    from memento.eval.report.view_data import load_run

    data = load_run(output)
    samples = [sample for problem in data["problems"] for sample in problem["samples"]]
    assert data["finished"] and len(samples) == sum(m["samples"] for m in summary["modes"].values())
    assert all(sample["curve"] and sample["peak"] for sample in samples)


def test_openai_backend_against_memento_serve(served, hf_reference, tmp_path):
    summary = run_eval(EvalOptions(**COMMON, backend="openai", base_url=served, output=str(tmp_path)), progress=False)
    _assert_same_samples(_samples(tmp_path), hf_reference)
    assert summary["modes"]["memento"]["kv_peak_ratio"] < 0.5
    _assert_viewable(tmp_path, summary)


def test_vllm_backend_offline_engine(hf_reference, tmp_path):
    engine = {"dtype": "float32", "max_model_len": 1024, "block_size": 32, "num_gpu_blocks_override": 64}
    command = [
        *(sys.executable, "-m", "memento.cli", "eval", "--backend", "vllm", "--model", COMMON["model"]),
        *("--benchmark", "toy", "--limit", "3", "--samples", "1", "--temperature", "0", "--max-new-tokens", "500"),
        *("--modes", COMMON["modes"], "--vllm-args", json.dumps(engine), "--output", str(tmp_path), "--json"),
    ]
    environment = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}  # engine core in-process: starts faster
    done = subprocess.run(command, capture_output=True, text=True, timeout=1500, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    _assert_same_samples(_samples(tmp_path), hf_reference)
    assert summary["modes"]["memento"]["kv_peak_ratio"] < 0.5
    _assert_viewable(tmp_path, summary)

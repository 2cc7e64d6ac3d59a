"""`memento rl --rollouts vllm`: vLLM samples the rollouts with the plugin evicting, in the trainer's process.

One engine (`run_rl_rollouts.py`, a subprocess) measures the sampling log-probs against the trainer's
memento-masked forward and trains two CISPO steps; a fresh engine (`run_engine.py`) loads the saved
step; the command line runs once with each rollout engine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from memento.cli import main
from memento.toy.train import CHECKPOINT

pytestmark = pytest.mark.slow  # three vLLM engine starts and a few CISPO steps: ~2-3 min on 2 loaded cores

HERE = Path(__file__).resolve().parent
MAX_TOKENS = 400
EVICT = {"enable": True, "keep_last_n_blocks": 0, "mask_delimiters": False}


def _results(script: str, spec: dict) -> dict | list:
    process = subprocess.run(
        [sys.executable, str(HERE / script)], input=json.dumps(spec), capture_output=True, text=True, timeout=1200
    )
    lines = [line for line in process.stdout.splitlines() if line.startswith("MEMENTO-RESULTS ")]
    assert process.returncode == 0 and lines, process.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("MEMENTO-RESULTS "))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[dict, Path]:
    output = tmp_path_factory.mktemp("rl_vllm") / "out"
    spec = {"model": str(CHECKPOINT), "output": str(output), "max_tokens": MAX_TOKENS, "learning_rate": 1e-3}
    result = _results("run_rl_rollouts.py", spec)
    for name in ("evict", "plain"):
        print(
            f"{name}: |vLLM - trainer memento| log-prob mean {result[name]['mean']:.2e} max {result[name]['max']:.2e}"
        )
    return result, output


def test_vllm_sampling_logprobs_equal_the_trainers_memento_logprobs(run):
    result, _ = run
    evict = result["evict"]
    assert evict["tokens"] > 1000 and min(evict["blocks_per_completion"]) >= 3
    assert evict["blocks_released"] > 0  # the plugin evicted inside vLLM while sampling
    assert evict["mean"] <= 1e-3 and evict["max"] <= 1e-3
    # rollouts.jsonl's completion text is written as with --rollouts hf: the final <|im_end|> included
    assert evict["texts"] == evict["decoded"] and evict["finished"] >= 1
    assert sum(text.endswith("<|im_end|>") for text in evict["texts"]) == evict["finished"]


def test_masking_off_in_vllm_only_disagrees(run):
    result, _ = run
    plain = result["plain"]
    assert plain["blocks_released"] == 0 and min(plain["blocks_per_completion"]) >= 3
    assert plain["max"] > 0.05  # the negative control: the comparison above can fail


def test_training_syncs_weights_and_corrects_with_the_trainers_logprobs(run):
    result, output = run
    steps = [entry for entry in result["log_history"] if "loss" in entry]
    assert len(steps) == 2 and result["weight_loads"] == 2  # before step 1's rollouts and before step 2's
    assert steps[0]["grad_norm"] > 0  # the step moved the weights
    for entry in steps:
        # TRL's vLLM importance-sampling correction: the trainer's memento forward vs vLLM's log-probs
        assert entry["sampling/sampling_logp_difference/max"] <= 1e-3
        assert abs(entry["sampling/importance_sampling_ratio/mean"] - 1) <= 1e-3
        assert entry["rollouts/per_second"] > 0 and entry["vllm/kv_blocks_freed"] > 0
        assert entry["vllm/kv_peak_tokens_per_rollout"] > 0 and entry["memento/kv_peak_tokens_mean"] > 0
    assert (output / "checkpoint-1" / "model.safetensors").is_file()


def test_greedy_rollout_after_a_step_equals_a_fresh_engine_on_the_saved_step(run):
    result, output = run
    greedy = result["greedy"]
    fresh = _results(
        "run_engine.py",
        {
            "model": str(output / "checkpoint-1"),
            "engine_config": EVICT,
            "num_blocks": 512,
            "jobs": [
                {
                    "prompt_ids": greedy["prompt_ids"],
                    "config": json.dumps(EVICT),
                    "max_tokens": MAX_TOKENS,
                    "logprobs": 1,
                }
            ],
        },
    )[0]
    assert fresh["token_ids"] == greedy["token_ids"]
    for steps, sampled, tokens in zip(fresh["logprobs"], greedy["logprobs"], greedy["token_ids"], strict=True):
        assert max(abs(step[str(t)] - lp) for step, t, lp in zip(steps, tokens, sampled, strict=True)) <= 1e-4
    # the reloaded engine still evicts exactly (the plugin's state survived the reloads) ...
    assert greedy["blocks_released"] > 0 and greedy["vs_checkpoint_1"]["max"] <= 1e-3
    # ... and the step changed what it computes
    assert greedy["vs_start"]["max"] > 0.1


def test_the_command_writes_the_same_output_with_either_engine(tmp_path):
    argv = ["rl", "--model", str(CHECKPOINT), "--benchmark", "toy", "--config", json.dumps(EVICT)]
    argv += ["--max-steps", "1", "--num-generations", "2", "--prompts-per-step", "1", "--problems", "2"]
    argv += ["--max-completion-length", "24"]
    assert main([*argv, "--output", str(tmp_path / "hf")]) == 0
    process = subprocess.run(
        [sys.executable, "-m", "memento.cli", *argv, "--output", str(tmp_path / "vllm"), "--rollouts", "vllm"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    hf, vllm = tmp_path / "hf", tmp_path / "vllm"
    assert sorted(p.name for p in hf.iterdir()) == sorted(p.name for p in vllm.iterdir())
    rows = {name: [json.loads(line) for line in (tmp_path / name / "rollouts.jsonl").open()] for name in ("hf", "vllm")}
    assert len(rows["hf"]) == len(rows["vllm"]) == 2
    for a, b in zip(rows["hf"], rows["vllm"], strict=True):
        assert set(a) == set(b) and set(a["rewards"]) == set(b["rewards"])
        assert a["problem_id"] == b["problem_id"] and a["prompt"] == b["prompt"]
        assert b["completion_tokens"] == 24
    reports = {name: json.loads((tmp_path / name / "memento_rl.json").read_text()) for name in ("hf", "vllm")}
    assert set(reports["hf"]) == set(reports["vllm"])
    assert reports["vllm"]["options"]["rollouts"] == "vllm" and reports["hf"]["options"]["rollouts"] == "hf"
    logged = {key for entry in reports["vllm"]["log_history"] for key in entry}
    assert {"rollouts/per_second", "vllm/kv_blocks_freed", "vllm/kv_peak_tokens_per_rollout"} <= logged
    assert "sampling/sampling_logp_difference/max" in logged

"""`run_rl` end to end on the embedded toy model: rollouts under eviction, logs, an ordinary HF checkpoint."""

from __future__ import annotations

import json

import pytest

from memento.config import MementoConfig
from memento.eval import BenchmarkUnavailable, build_prompt, load_benchmark
from memento.inference import MementoGenerator
from memento.inference.loading import load_model_and_tokenizer
from memento.rl import RLOptions, run_rl
from memento.rl.data import PROBLEM_ID, TOY_PROBLEMS, dataset_rows, load_problems
from memento.toy.train import CHECKPOINT


@pytest.mark.slow
def test_run_rl_trains_logs_every_rollout_and_saves_a_checkpoint(tmp_path):
    output = tmp_path / "rl"
    options = RLOptions(
        model=str(CHECKPOINT),
        output=str(output),
        benchmark="toy",
        problems=4,
        num_generations=2,
        prompts_per_step=1,
        max_steps=2,
        num_iterations=2,  # one batch of rollouts, two optimizer steps: the second is off-policy
        max_completion_length=120,
        learning_rate=1e-4,
        well_formed_weight=0.5,
        memento_cap_tokens=3,
        memento_cap_weight=0.5,
        config='{"enable": true, "keep_last_n_blocks": 0}',
    )
    assert run_rl(options) == output
    rollouts = [json.loads(line) for line in (output / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == 2  # 1 generation x 1 prompt x G=2
    assert rollouts[0]["problem_id"] == rollouts[1]["problem_id"]  # one group: G completions of one problem
    assert rollouts[0]["problem_id"].startswith("toy-rl-")
    for rollout in rollouts:
        assert set(rollout["rewards"]) == {"correct", "well_formed", "memento_length"}
        assert rollout["completion_tokens"] == 120 and rollout["blocks"] >= 1
        assert "<|summary_end|>" in rollout["completion"]
        # peak KV under eviction stays below the whole sequence
        assert rollout["kv_peak_tokens"] < rollout["completion_tokens"] + 60
    report = json.loads((output / "memento_rl.json").read_text())
    assert report["memento_config"]["keep_last_n_blocks"] == 0 and report["memento_config"]["mask_delimiters"] is False
    logged = {key for entry in report["log_history"] for key in entry}
    assert {"memento/blocks_per_completion", "memento/kv_peak_tokens_mean", "kl", "reward", "reward_std"} <= logged
    assert "cispo_clip_ratio/low" in logged
    # the log-probs recorded while sampling with eviction equal the training forward's, inside TRL
    gaps = [
        entry["memento/sampling_logp_gap_max"]
        for entry in report["log_history"]
        if "memento/sampling_logp_gap_max" in entry
    ]
    assert gaps and max(gaps) < 1e-4
    model, tokenizer = load_model_and_tokenizer(output, dtype="float32", device="cpu")  # what generate/eval take
    (result,) = MementoGenerator(model, tokenizer, MementoConfig(mask_delimiters=False)).generate(
        [rollouts[0]["prompt"]], max_new_tokens=40
    )
    assert result.token_ids


def test_problems_are_memento_eval_benchmarks_by_name_or_file(tmp_path):
    humaneval = load_problems("humaneval", 2, use_hub=False)  # the offline package copy, as memento eval reads it
    assert [p.id for p in humaneval] == ["HumanEval/0", "HumanEval/1"] and humaneval[0].kind == "code"
    assert len(load_problems("gsm8k", 3, use_hub=False)) == 3
    good = tmp_path / "good.jsonl"
    good.write_text(
        '{"problem": "What is 1/2?", "answer": "\\\\frac{1}{2}"}\n\n'
        '{"problem": "Pick.", "choices": ["x", "y"], "answer": "y", "id": "c7"}\n'
    )
    math, choice = load_problems(str(good))
    assert (math.kind, math.answer, choice.kind, choice.id) == ("math", "\\frac{1}{2}", "choice", "c7")
    rows = dataset_rows([math, choice])
    assert rows[0] == {"prompt": build_prompt(math), PROBLEM_ID: "good-0"}  # the user turn memento eval sends
    assert "A) " in rows[1]["prompt"] and rows[1][PROBLEM_ID] == "c7"
    with pytest.raises(ValueError, match="duplicate problem id"):
        dataset_rows([math, math])


def test_toy_problems_never_overlap_the_held_out_set_memento_eval_scores():
    drawn = load_problems("toy", 50)
    assert len(drawn) == 50 and all(p.kind == "toy" for p in drawn)
    assert len(load_problems("toy", 0)) == TOY_PROBLEMS
    held_out = {p.problem for p in load_benchmark("toy", 300).problems}
    assert not held_out & {p.problem for p in drawn}
    assert [p.problem for p in load_problems("toy", 5, seed=1)] != [p.problem for p in drawn[:5]]


def test_bad_benchmarks_are_one_clear_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "x"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl row 1: missing field 'answer'"):
        load_problems(str(bad))
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: invalid JSON"):
        load_problems(str(bad))
    with pytest.raises(FileNotFoundError, match="no such benchmark file"):
        load_problems(str(tmp_path / "missing.jsonl"))
    with pytest.raises(BenchmarkUnavailable, match="unknown benchmark 'math501'"):
        load_problems("math501")


def test_options_are_validated():
    with pytest.raises(ValueError, match="num_generations must be >= 2"):
        RLOptions(model="m", output="o", num_generations=1)
    with pytest.raises(ValueError, match="min_is_weight < 1 < max_is_weight"):
        RLOptions(model="m", output="o", min_is_weight=1.5)
    with pytest.raises(ValueError, match="attention must be one of"):
        RLOptions(model="m", output="o", attention="sparse")
    with pytest.raises(ValueError, match="rollouts must be one of"):
        RLOptions(model="m", output="o", rollouts="sglang")
    with pytest.raises(ValueError, match=r"vllm_gpu_memory_utilization must be in \(0, 1\)"):
        RLOptions(model="m", output="o", vllm_gpu_memory_utilization=1.5)


def test_memento_config_from_json_text_or_file(tmp_path):
    from memento.rl.run import resolve_memento_config

    assert resolve_memento_config(None, "qwen3") == MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)
    assert resolve_memento_config(None, "phi3").mask_delimiters is True
    with pytest.warns(UserWarning, match='not "enable": true'):  # the authors' JSON meaning: off
        assert resolve_memento_config('{"keep_last_n_blocks": 0}', "qwen3").evicts is False
    path = tmp_path / "config.json"
    path.write_text('{"enable": true, "keep_last_n_blocks": 1, "mask_delimiters": true}')
    assert resolve_memento_config(str(path), "qwen3") == MementoConfig(keep_last_n_blocks=1, mask_delimiters=True)
    with pytest.raises(ValueError, match="not valid JSON"):
        resolve_memento_config("{keep: 0}", "qwen3")
    with pytest.raises(ValueError, match="unknown memento config option"):
        resolve_memento_config('{"keep": 0}', "qwen3")
    with pytest.raises(ValueError, match=r"missing\.json: no such memento config file"):
        resolve_memento_config(str(tmp_path / "missing.json"), "qwen3")


def test_rl_and_eval_read_a_config_argument_alike(tmp_path):
    from memento.eval.run.modes import builtin_mode, extra_mode
    from memento.rl.run import resolve_memento_config

    text = '{"enable": true, "keep_last_n_blocks": 1}'
    assert resolve_memento_config(text, "phi3") == extra_mode(text, True).config  # Phi-4: mask_delimiters true
    path = tmp_path / "keep1.json"
    path.write_text(text)
    assert resolve_memento_config(str(path), "qwen3") == extra_mode(f"keep1={path}", False).config
    assert resolve_memento_config(None, "qwen3") == builtin_mode("memento", False).config

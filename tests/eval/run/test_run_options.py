"""Sampling defaults and seeds, modes side by side, and the validation of `memento eval`'s options."""

from __future__ import annotations

import pytest

from memento.config import MementoConfig
from memento.eval.run.modes import BASELINE, extra_mode, resolve_modes
from memento.eval.run.options import EvalOptions, GradeOptions
from memento.eval.run.sampling import SEED_BITS, sample_seed
from memento.inference.sampling import SamplingOptions


def test_the_paper_sampling_defaults():
    options = EvalOptions(model="m", benchmark="toy")
    assert options.sampling == SamplingOptions(temperature=0.6, top_p=0.95, top_k=20, max_new_tokens=32768, seed=None)


@pytest.mark.parametrize(
    "changes", [{"temperature": -0.1}, {"top_p": 0.0}, {"top_p": 1.5}, {"top_k": -1}, {"max_new_tokens": 0}]
)
def test_sampling_refuses_out_of_range_values(changes):
    with pytest.raises(ValueError, match=next(iter(changes))):
        EvalOptions(model="m", benchmark="toy", **changes)


def test_sample_seeds_are_reproducible_and_distinct():
    seeds = {sample_seed(run, problem, index) for run in (0, 1) for problem in ("a", "b") for index in range(50)}
    assert len(seeds) == 200
    assert all(0 <= seed < 2**SEED_BITS for seed in seeds)
    assert sample_seed(0, "a", 3) == sample_seed(0, "a", 3)


def test_builtin_modes_extra_configs_and_the_baseline():
    modes = resolve_modes(
        ["memento", "no_eviction", "restart"],
        False,
        extra=[
            'keep1={"enable": true, "keep_last_n_blocks": 1}',
            '{"enable": true, "keep_last_n_blocks": 2, "mask_delimiters": true}',
        ],
        baseline_model="/models/base",
    )
    by_name = {mode.name: mode for mode in modes}
    assert list(by_name) == ["memento", "no_eviction", "restart", "keep1", "config", BASELINE]
    assert by_name["memento"].config == MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)
    assert by_name["no_eviction"].config.keep_last_n_blocks == -1 and not by_name["no_eviction"].config.evicts
    assert by_name["restart"].config.restart_mode
    assert by_name["keep1"].config == MementoConfig(keep_last_n_blocks=1, mask_delimiters=False)
    assert by_name["config"].config.mask_delimiters is True  # the JSON's own setting wins
    assert by_name[BASELINE].config is None and by_name[BASELINE].model == "/models/base"
    assert by_name[BASELINE].replay_config == MementoConfig.disabled()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"enable": true, "keep_last_n_blocks": -3}', "keep_last_n_blocks: expected an integer >= -1"),
        ('{"keep_last": 1}', "unknown memento config option"),
    ],
)
def test_a_bad_config_mode_is_one_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        extra_mode(text, False)


def test_a_config_mode_follows_the_authors_json_meaning():
    with pytest.warns(UserWarning, match='not "enable": true'):
        mode = extra_mode('{"keep_last_n_blocks": 1}', False)
    assert not mode.config.enable  # as `memento serve --block-masking-config` reads the same JSON


def test_a_config_mode_can_be_a_json_file(tmp_path):
    path = tmp_path / "keep2.json"
    path.write_text('{"enable": true, "keep_last_n_blocks": 2}')
    named, unnamed = extra_mode(f"keep2={path}", True), extra_mode(str(path), False)
    assert (named.name, named.config) == ("keep2", MementoConfig(keep_last_n_blocks=2, mask_delimiters=True))
    assert (unnamed.name, unnamed.config.mask_delimiters) == ("config", False)
    with pytest.raises(ValueError, match=r"--config config: .*nowhere\.json: no such memento config file"):
        extra_mode(str(tmp_path / "nowhere.json"), False)
    path.write_text("{oops")
    with pytest.raises(ValueError, match=r"--config keep2: .*keep2\.json: not valid JSON \(line 1"):
        extra_mode(f"keep2={path}", False)


def test_mode_names_must_be_unique():
    with pytest.raises(ValueError, match="given twice"):
        resolve_modes(["memento"], False, extra=['memento={"enable": true, "keep_last_n_blocks": 1}'])


def test_default_modes():
    for backend in ("hf", "vllm", "openai"):  # the vLLM plugin recomputes mementos too (restart_mode)
        options = EvalOptions(model="m", benchmark="toy", backend=backend)
        assert options.mode_names == ["memento", "no_eviction", "restart"]
    assert EvalOptions(model="m", benchmark="toy", modes="no_eviction, memento").mode_names == [
        "no_eviction",
        "memento",
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": None}, "--model is required"),
        ({"benchmark": ""}, "--benchmark is required"),
        ({"backend": "tgi"}, "backend must be one of"),
        ({"modes": "memento,fast"}, "unknown mode"),
        ({"modes": " , ", "baseline_model": None}, "--modes is empty"),
        ({"samples": 0}, "samples must be >= 1"),
        ({"limit": 0}, "limit must be >= 1"),
        ({"vllm_args": "{oops"}, "--vllm-args is not valid JSON"),
        ({"geometry": "qwen3-8b", "model_config": "x"}, "not both"),
        ({"top_k": -2}, "top_k"),
    ],
)
def test_eval_options_refuse_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        EvalOptions(**{"model": "m", "benchmark": "toy", **changes})


def test_grade_options_refuse_bad_values():
    with pytest.raises(ValueError, match="not both"):
        GradeOptions(benchmark="toy", responses="r.jsonl", geometry="qwen3-8b", model_config="x")

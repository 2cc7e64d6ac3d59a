"""`memento train` takes every other `TrainingArguments` field as a flag (HfArgumentParser's way), and
refuses in one line what cannot run here (FSDP on CPU) or what memento owns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from memento.cli import main
from memento.errors import UsageError
from memento.training.arguments import MEMENTO_OWNED, stage_arguments, trainer_fields
from memento.training.options import TrainOptions
from tests.models import tiny_model
from tests.training.test_train_cli import write_workspace


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_workspace(tmp_path_factory.mktemp("arguments"), records=4)


def _train(workspace: Path, output: Path, *flags: str) -> int:
    argv = ["train", "--model", str(workspace / "base"), "--data", str(workspace / "train.jsonl")]
    return main([*argv, "--output", str(output), "--stage", "full", "--epochs", "1", "--max-length", "256", *flags])


def test_trainer_flags_reach_the_trainer(workspace, tmp_path, capsys, monkeypatch):
    flags = ["--gradient-accumulation-steps", "2", "--ddp-find-unused-parameters", "false"]
    flags += ["--lr_scheduler_type", "linear", "--optim", "adafactor", "--adam-epsilon", "1e-6"]
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")  # what `accelerate launch --cpu` sets: one process
    assert _train(workspace, tmp_path / "out", *flags) == 0
    arguments = torch.load(tmp_path / "out" / "training_args.bin", weights_only=False)
    assert arguments.gradient_accumulation_steps == 2 and arguments.ddp_find_unused_parameters is False
    assert (arguments.lr_scheduler_type, arguments.optim, arguments.adam_epsilon) == ("linear", "adafactor", 1e-6)
    record = json.loads((tmp_path / "out" / "memento_training.json").read_text())
    assert record["options"]["trainer_arguments"] == {
        "ddp_find_unused_parameters": False,
        "lr_scheduler_type": "linear",
        "optim": "adafactor",
        "adam_epsilon": 1e-6,
    }  # --gradient-accumulation-steps is memento's own option
    stderr = capsys.readouterr().err
    assert "accelerate launch --cpu starts a single process" in stderr and "torchrun --nproc_per_node N" in stderr


def test_memento_defaults_hold_unless_a_trainer_flag_overrides_them(tmp_path):
    default = stage_arguments(tmp_path, TrainOptions(), memento=False, evaluate=False, bf16=False)
    assert (default.lr_scheduler_type, default.adam_beta2, default.report_to) == ("cosine", 0.999, [])
    options = TrainOptions(trainer_arguments={"lr_scheduler_type": "constant", "adam_beta2": 0.95})
    given = stage_arguments(tmp_path, options, memento=False, evaluate=False, bf16=False)
    assert (given.lr_scheduler_type, given.adam_beta2) == ("constant", 0.95)


def test_memento_owned_and_unknown_names_are_refused():
    assert "learning_rate" in MEMENTO_OWNED and "deepspeed" in {f.name for f in trainer_fields()}
    assert not MEMENTO_OWNED & {f.name for f in trainer_fields()}
    with pytest.raises(UsageError, match=r"\['learning_rate'\] are set by memento train's own options"):
        TrainOptions(trainer_arguments={"learning_rate": 1.0})
    with pytest.raises(UsageError, match=r"\['no_such_thing'\] are not transformers.TrainingArguments fields"):
        TrainOptions(trainer_arguments={"no_such_thing": 1})


def test_fsdp_on_cpu_is_one_line(workspace, tmp_path, capsys):
    assert _train(workspace, tmp_path / "out", "--fsdp", "full_shard") == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and error.startswith("memento train: error: --fsdp: FSDP needs GPUs")
    assert not (tmp_path / "out" / "memento_training.json").exists()


def test_a_bad_trainer_argument_is_one_line(workspace, tmp_path, capsys):
    assert _train(workspace, tmp_path / "out", "--torch-empty-cache-steps", "0") == 2  # TrainingArguments refuses
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and error.startswith(
        "memento train: error: Trainer arguments ['torch_empty_cache_steps']"
    )


def test_lora_initialisation_follows_the_seed():
    """Every process (and every rerun) starts from the same adapters: their init is seeded by --seed."""
    from memento.training.adapters import add_lora

    def adapters(seed: int) -> dict[str, torch.Tensor]:
        model = add_lora(tiny_model("qwen3", "sdpa"), [1, 2], TrainOptions(lora_rank=4, seed=seed))
        return {name: p.detach().clone() for name, p in model.named_parameters() if "lora_A" in name}

    first, again, other = adapters(0), adapters(0), adapters(1)
    assert first and all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_zero3_without_gathered_saving_is_one_line(workspace, tmp_path, capsys):
    """ZeRO-3 saving only its shards would leave stage 2 and `memento generate` no checkpoint: refused first."""
    config = tmp_path / "zero3.json"
    config.write_text(json.dumps({"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": "auto"}))
    assert _train(workspace, tmp_path / "out", "--deepspeed", str(config)) == 2
    assert capsys.readouterr().err.strip() == (
        f"memento train: error: --deepspeed {config}: ZeRO-3 needs "
        '"zero_optimization": {"stage3_gather_16bit_weights_on_model_save": true} so that the model is saved'
    )
    assert not (tmp_path / "out").exists()
    from memento.training.distributed import zero3_enabled

    assert not zero3_enabled()  # the refused config is no longer in force in this process


def test_save_steps_saves_and_evaluates_every_n_steps(tmp_path):
    """--save-steps N (was: 'multiple values for keyword argument save_strategy' on every use)."""
    stepped = stage_arguments(tmp_path, TrainOptions(save_steps=3), memento=False, evaluate=True, bf16=False)
    assert (stepped.save_strategy, stepped.save_steps) == ("steps", 3)
    assert (stepped.eval_strategy, stepped.eval_steps) == ("steps", 3)
    by_epoch = stage_arguments(tmp_path, TrainOptions(), memento=False, evaluate=False, bf16=False)
    assert by_epoch.save_strategy == "epoch"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1, 2]", "holds an array, expected a JSON object (the config)"),  # issue 34, item 8: was AttributeError
        ('"zero3"', "holds a string, expected a JSON object"),
        ("{", "not valid JSON"),
        (None, "cannot read it (No such file or directory)"),
    ],
    ids=["list", "string", "cut-off", "missing"],
)
def test_a_deepspeed_config_that_is_not_a_json_object_is_one_line(workspace, tmp_path, capsys, text, expected):
    config = tmp_path / "ds.json"
    if text is not None:
        config.write_text(text)
    assert _train(workspace, tmp_path / "out", "--deepspeed", str(config)) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and error.startswith(f"memento train: error: --deepspeed {config}: "), error
    assert expected in error and not (tmp_path / "out").exists()

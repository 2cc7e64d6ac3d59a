"""Options generated from dataclasses: one default, one help text, validated by the dataclass."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import pytest

from memento.cli import build_parser, options, train
from memento.config import MementoConfig
from memento.errors import UsageError
from memento.training import TrainOptions


@dataclass(frozen=True)
class Example:
    rate: float = field(default=0.5, metadata={"help": "a rate"})
    count: int | None = None
    kind: Literal["a", "b"] = "a"
    flag: bool = False
    on: bool = True
    names: tuple[str, ...] = ()
    keep: int = field(default=0, metadata={"flag": "--keep", "aliases": ("--keep-it",)})

    def __post_init__(self) -> None:
        if self.rate < 0:
            raise ValueError(f"rate must be >= 0, got {self.rate}")


def parser_for(cls: type, **kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    options.add_options(parser, cls, **kwargs)
    return parser


def test_defaults_types_and_flags_come_from_the_dataclass():
    parser = parser_for(Example)
    assert options.from_args(Example, parser.parse_args([])) == Example()
    args = parser.parse_args(
        [
            "--rate",
            "2",
            "--count",
            "3",
            "--kind",
            "b",
            "--flag",
            "--no-on",
            "--names",
            "x",
            "--names",
            "y",
            "--keep-it",
            "4",
        ]
    )
    assert options.from_args(Example, args) == Example(2.0, 3, "b", True, False, ("x", "y"), 4)
    assert "a rate (default: 0.5)" in parser.format_help()


def test_bad_values_are_usage_errors_or_argparse_errors(capsys):
    parser = parser_for(Example)
    with pytest.raises(UsageError, match=r"rate must be >= 0, got -1\.0"):
        options.from_args(Example, parser.parse_args(["--rate", "-1"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--kind", "c"])  # not among the Literal's choices
    assert "invalid choice: 'c'" in capsys.readouterr().err


def test_train_options_are_generated_with_the_dataclass_defaults():
    args = build_parser(["train"]).parse_args(["train", "--model", "m", "--data", "d", "--output", "o"])
    assert options.from_args(TrainOptions, args) == TrainOptions()
    parser = argparse.ArgumentParser()
    train.configure(parser)
    help_text = parser.format_help()
    for f in dataclasses.fields(TrainOptions):
        if f.metadata.get("cli", True):  # trainer_arguments: the TrainingArguments flags fill it
            assert options.flag_name(f) + " " in help_text, f.name  # every hyperparameter is a flag


def test_memento_flags_keep_their_documented_names():
    parser = argparse.ArgumentParser()
    options.add_memento_options(parser)
    args = parser.parse_args(
        ["--keep-last-n", "1", "--mask-delimiters", "--max-block-tokens", "64", "--no-require-assistant-section"]
    )
    config = options.memento_config(args, "qwen3")
    assert config == MementoConfig(
        keep_last_n_blocks=1, mask_delimiters=True, max_block_tokens=64, require_assistant_section=False
    )
    defaults = parser.parse_args([])
    assert options.memento_config(defaults, "phi3").mask_delimiters is True  # per model family
    assert options.memento_config(defaults, "qwen3") == MementoConfig(mask_delimiters=False)
    restart = parser.parse_args(["--restart-mode"])
    assert options.memento_config(restart, "qwen3").restart_mode is True

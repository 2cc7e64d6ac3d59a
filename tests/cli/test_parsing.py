"""`memento.cli.parsing` (issue 34, item 13): an unknown flag names the flag meant, a flag given twice says
which value is used (the last), and a config for a feature left off is refused. Every command's parser."""

from __future__ import annotations

import pytest

from memento.cli import build_parser, main
from tests.cli.test_bad_input import refused

TRAIN = ["train", "--model", "m", "--data", "d.jsonl", "--output", "o"]


def _unrecognized(capsys: pytest.CaptureFixture[str], argv: list[str], prog: str = "memento train") -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"{prog}: error: unrecognized arguments: "), err
    return err


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("--learning_rate", "--learning_rate: did you mean --learning-rate?"),  # a memento flag, Trainer spelling
        ("--output_dir", "--output_dir: did you mean --output?"),  # a Trainer field memento owns
        ("--num-train-epochs", "--num-train-epochs: did you mean --epochs?"),
        ("--do_train", "--do_train: memento train sets TrainingArguments.do_train itself"),
        ("--learnig-rate", "--learnig-rate: did you mean --learning-rate?"),  # a typo
    ],
)
def test_an_unknown_train_flag_names_the_flag_meant(capsys, typed, meant):
    assert meant in _unrecognized(capsys, [*TRAIN, typed, "1"])


def test_an_unknown_flag_of_any_command_names_the_flag_meant(capsys):
    err = _unrecognized(capsys, ["kv", "trace.txt", "--keep_last_n", "1"], "memento kv")
    assert "--keep_last_n: did you mean --keep-last-n?" in err
    argv = ["eval", "grade", "--responses", "r.jsonl", "--benchmark", "b.jsonl", "--jsno"]  # a nested command
    assert "--jsno: did you mean --json?" in _unrecognized(capsys, argv, "memento eval grade")


def test_a_flag_given_twice_says_the_last_is_used(capsys):
    argv = [*TRAIN, "--epochs", "1", "--epochs", "2", "--packing", "--no-packing"]
    argv += ["--lr_scheduler_type", "linear", "--lr-scheduler-type", "constant"]  # a Trainer flag, both spellings
    args = build_parser(["train"]).parse_args(argv)
    assert (args.epochs, args.packing, args.lr_scheduler_type) == (2.0, False, "constant")
    assert capsys.readouterr().err.splitlines() == [
        "memento train: note: --epochs 1.0, then --epochs 2.0: the last is used",
        "memento train: note: --packing, then --no-packing: the last is used",
        "memento train: note: --lr_scheduler_type linear, then --lr-scheduler-type constant: the last is used",
    ]


def test_a_repeatable_flag_is_not_a_repeat(capsys):
    args = build_parser(["kv"]).parse_args(["kv", "t.txt", "--mask-delimiters", "--keep-last-n", "2"])
    assert args.keep_last_n_blocks == 2 and capsys.readouterr().err == ""
    argv = ["eval", "--benchmark", "b.jsonl", "--config", "a={}", "--config", "b={}", "--output", "o"]
    argv += ["--base-url", "http://127.0.0.1:1/v1", "--model", "m"]
    build_parser(["eval"]).parse_args(argv)  # --config is repeatable (append)
    assert "note" not in capsys.readouterr().err


def test_an_fsdp_config_without_fsdp_is_refused(capsys, tmp_path):
    config = tmp_path / "fsdp.json"
    config.write_text("{}")
    refused(capsys, [*TRAIN, "--fsdp-config", str(config)], "--fsdp-config: FSDP is off", "--fsdp")

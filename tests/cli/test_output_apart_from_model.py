"""`memento train` and `memento rl` never write over the model they start from (issue 24, item 1).

Real parts: a tiny Qwen3 checkpoint (and the embedded toy memento model) copied to a temporary
directory, the real `memento` command line. Each refusal is one line, exit code 2, and the model's
files are byte for byte what they were.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from memento.cli import main
from memento.toy import CHECKPOINT
from tests.cli.test_bad_input import refused
from tests.conftest import REAL_TRACES, build_tokenizer
from tests.models import save_checkpoint


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture
def model(tmp_path: Path) -> Path:
    directory = tmp_path / "models" / "base"
    save_checkpoint(directory, build_tokenizer(with_memento_tokens=False), layers=1)
    return directory


@pytest.fixture(autouse=True)
def _quiet(capsys: pytest.CaptureFixture[str], model: Path) -> None:
    capsys.readouterr()  # the checkpoint's own save messages are not the command's


def _train_argv(model: str, output: str) -> list[str]:
    data = str(REAL_TRACES[0])
    return ["train", "--model", model, "--data", data, "--output", output, "--stage", "full", "--epochs", "1"]


def _outputs_that_overwrite(model: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The model directory spelled five ways, a link to it, and a directory that holds it."""
    link = model.parent / "link"
    link.symlink_to(model, target_is_directory=True)
    monkeypatch.chdir(model.parent)
    return [
        str(model),
        str(model) + "/",
        "base",
        "./base/",
        f"../{model.parent.name}/base",
        str(link),
        str(model.parent),
    ]


def test_train_refuses_an_output_that_is_or_holds_the_model(capsys, model, monkeypatch):
    before = _digests(model)
    for output in _outputs_that_overwrite(model, monkeypatch):
        line = refused(
            capsys, _train_argv(str(model), output), f"--output {Path(output)}: ", "would overwrite the model"
        )
        assert ("holds the --model directory" if output == str(model.parent) else "is the --model directory") in line
    assert _digests(model) == before
    # a relative --model is resolved the same way
    refused(capsys, _train_argv("base", str(model)), "is the --model directory base")


def test_rl_refuses_an_output_that_is_or_holds_the_model(capsys, tmp_path, monkeypatch):
    model = tmp_path / "toys" / "base"
    shutil.copytree(CHECKPOINT, model)
    before = _digests(model)
    for output in _outputs_that_overwrite(model, monkeypatch):
        argv = ["rl", "--model", str(model), "--output", output, "--benchmark", "toy", "--max-steps", "1"]
        refused(capsys, argv, f"--output {Path(output)}: ", "the --model directory", "would overwrite the model")
    assert _digests(model) == before


def test_an_output_holding_a_link_to_a_model_file_is_refused(capsys, model):
    for output in (model / "out", model.parent / "elsewhere"):
        output.mkdir()
        (output / "model.safetensors").symlink_to(model / "model.safetensors")
        line = refused(capsys, _train_argv(str(model), str(output)), "is the --model file", "model.safetensors")
        assert str(output / "model.safetensors") in line
    refused(capsys, ["rl", "--model", str(model), "--output", str(model / "out")], "is the --model file")


def test_train_into_a_fresh_directory_inside_the_model_leaves_the_model_alone(capsys, model):
    before = _digests(model)
    output = model / "memento"
    assert main([*_train_argv(str(model), str(output)), "--batch-size", "1"]) == 0
    assert (output / "model.safetensors").is_file() and (output / "config.json").is_file()
    assert _digests(model) == before
    assert os.path.samefile(output.parent, model)

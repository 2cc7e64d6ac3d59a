"""`memento.training.run_folder` (issue 34, item 11): a folder a killed run left half-written is never trained
over silently: refused in one line offering --resume or --overwrite; --overwrite deletes the stale checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memento.cli import main
from memento.training.run_folder import DONE_MARKER
from tests.cli.test_bad_input import refused
from tests.training.test_train_cli import write_workspace

FLAGS = ["--epochs", "1", "--max-length", "256", "--save-total-limit", "5"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_workspace(tmp_path_factory.mktemp("run_folder"), records=4)


def _argv(workspace: Path, output: Path, *flags: str) -> list[str]:
    base = ["train", "--model", str(workspace / "base"), "--data", str(workspace / "train.jsonl")]
    return [*base, "--output", str(output), *FLAGS, *flags]


@pytest.mark.parametrize(
    ("stage", "stale"),
    [("both", "stage1-full/checkpoint-20"), ("both", "stage2-memento/checkpoint-3"), ("full", "checkpoint-20")],
)
def test_a_folder_a_killed_run_left_is_refused_in_one_line(workspace, tmp_path, capsys, stage, stale):
    output = tmp_path / "out"
    (output / stale).mkdir(parents=True)
    if stale.startswith("stage2"):  # stage 1 finished, stage 2 was killed
        (output / "stage1-full").mkdir()
        (output / "stage1-full" / DONE_MARKER).write_text("{}")
    before = sorted(output.rglob("*"))
    refused(
        capsys,
        _argv(workspace, output, "--stage", stage),
        f"--output {output}: holds an unfinished run ({output / stale}, and no {DONE_MARKER} beside it)",
        "continue it with --resume, or start over with --overwrite",
    )
    assert sorted(output.rglob("*")) == before  # nothing written
    refused(capsys, _argv(workspace, output, "--resume", "--overwrite"), "choose resume", "or overwrite (start over)")


def test_a_finished_folder_is_not_an_unfinished_run(workspace, tmp_path, capsys):
    output = tmp_path / "out"
    (output / "checkpoint-2").mkdir(parents=True)
    (output / DONE_MARKER).write_text("{}")
    assert main(_argv(workspace, output, "--stage", "full")) == 0, capsys.readouterr().err
    assert json.loads((output / DONE_MARKER).read_text())["stage"] == "full"


def test_overwrite_starts_over_without_the_stale_checkpoints(workspace, tmp_path, capsys):
    output = tmp_path / "out"
    (output / "checkpoint-20").mkdir(parents=True)
    (output / "checkpoint-20" / "trainer_state.json").write_text("{}")
    assert main(_argv(workspace, output, "--stage", "full", "--overwrite")) == 0, capsys.readouterr().err
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-4"]  # 4 examples, batch 1, 1 epoch
    record = json.loads((output / DONE_MARKER).read_text())
    assert record["resumed_from"] is None and record["options"]["overwrite"] is True

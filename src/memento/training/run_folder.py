"""What `memento train` finds in its output folder before it writes: an unfinished run is never trained over silently.

A stage folder (``OUTPUT/stage1-full`` and ``OUTPUT/stage2-memento`` for ``--stage both``, else
``OUTPUT``) is finished once its record (`DONE_MARKER`) is written, the stage's last write. One that
holds ``checkpoint-N`` folders without it was left by a run that stopped: a new run continues it
(``--resume``) or starts over, deleting its checkpoints (``--overwrite``); it is refused otherwise.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from memento.errors import UsageError

DONE_MARKER = "memento_training.json"
"""The record a stage writes last, in its folder (`memento.training.trainer.train_stage`)."""


def stage_folders(output_dir: Path, stage: str) -> list[Path]:
    """The folders the stages of `stage` ("full", "memento" or "both") write to."""
    if stage == "both":
        return [output_dir / "stage1-full", output_dir / "stage2-memento"]
    return [output_dir]


def checkpoints(folder: Path) -> list[Path]:
    """The Trainer's ``checkpoint-N`` folders in `folder`, by step."""
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-", 1)[1]))


def unfinished(output_dir: Path, stage: str) -> list[Path]:
    """The checkpoints of the stage folders a stopped run left (no `DONE_MARKER` beside them)."""
    left = []
    for folder in stage_folders(output_dir, stage):
        if folder.is_dir() and not (folder / DONE_MARKER).is_file():
            left += checkpoints(folder)
    return left


def check_output_folder(output_dir: Path, stage: str, *, resume: bool, overwrite: bool) -> None:
    """`UsageError` when `output_dir` holds an unfinished run and neither `resume` nor `overwrite` says what to do."""
    if resume or overwrite:
        return
    left = unfinished(output_dir, stage)
    if left:
        raise UsageError(
            f"--output {output_dir}: holds an unfinished run ({left[-1]}, and no {DONE_MARKER} beside it); "
            "continue it with --resume, or start over with --overwrite (deletes its checkpoints)"
        )


def clear(output_dir: Path, stage: str) -> list[Path]:
    """Delete the checkpoints and records of the stage folders (``--overwrite``); the paths deleted."""
    deleted = []
    for folder in stage_folders(output_dir, stage):
        if not folder.is_dir():
            continue
        for checkpoint in checkpoints(folder):
            shutil.rmtree(checkpoint)
            deleted.append(checkpoint)
        if (folder / DONE_MARKER).is_file():
            (folder / DONE_MARKER).unlink()
            deleted.append(folder / DONE_MARKER)
    return deleted

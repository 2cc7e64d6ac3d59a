"""Checks of the files and directories named on the command line, made before any work starts.

Each failure is a `UsageError` naming the flag and the path, so that a long run is never lost to a
path that could have been refused at start.
"""

from __future__ import annotations

import os
from pathlib import Path

from memento.errors import UsageError
from memento.hub import TOKENIZER_FILES, local_or_hub

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def existing_file(path: Path, flag: str) -> Path:
    """`path` must be a readable regular file."""
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory, expected a file")
    if not path.is_file():
        raise UsageError(f"{flag} {path}: no such file")
    return path


def existing_directory(path: Path, flag: str, *, holding: str | None = None) -> Path:
    """`path` must be a directory (holding the file `holding`, when given)."""
    if not path.exists():
        raise UsageError(f"{flag} {path}: no such directory")
    if not path.is_dir():
        raise UsageError(f"{flag} {path}: is a file, expected a directory")
    if holding is not None and not (path / holding).is_file():
        raise UsageError(f"{flag} {path}: no {holding} in this directory")
    return path


def checkpoint_directory(path: Path, flag: str) -> Path:
    """A Hugging Face checkpoint: a directory with config.json whose safetensors files are whole (headers read).

    A hub id (``ORG/NAME[@REVISION]``) is resolved to its snapshot in the HF cache first (`memento.hub`); the
    local folder is returned, for the caller to use from then on."""
    from safetensors import SafetensorError, safe_open

    path = local_or_hub(path, flag)
    existing_directory(path, flag, holding="config.json")
    for weights in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(weights, "pt"):
                pass
        except (SafetensorError, OSError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UsageError(f"{flag} {path}: corrupt weights file {weights.name} ({reason})") from None
    return path


def model_checkpoint(path: Path, flag: str) -> Path:
    """A model as users have it: a checkpoint directory (a corrupt weights file named before any work), or
    a .gguf file (or a directory holding exactly one) converted once to its cached checkpoint."""
    from memento.inference.loading import resolve_checkpoint

    path = local_or_hub(path, flag)
    if (path / "config.json").is_file():
        checkpoint_directory(path, flag)
    try:
        return resolve_checkpoint(path)
    except (FileNotFoundError, UsageError) as error:
        raise UsageError(f"{flag} {error}") from None


def tokenizer_directory(path: Path, flag: str) -> Path:
    """`path` must be a directory holding a saved Hugging Face tokenizer (a hub id: its snapshot, returned)."""
    path = local_or_hub(path, flag, patterns=TOKENIZER_FILES)
    existing_directory(path, flag)
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise UsageError(f"{flag} {path}: no tokenizer here (none of {', '.join(_TOKENIZER_FILES)})")
    return path


def _first_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def output_directory(path: Path, flag: str) -> Path:
    """`path` must be a directory or creatable as one (no regular file on the way)."""
    existing = _first_existing(path.absolute())
    if not existing.is_dir():
        where = "is a file" if existing == path.absolute() else f"lies under the file {existing}"
        raise UsageError(f"{flag} {path}: {where}, expected a directory")
    return path


def output_apart_from_model(output: Path, model: Path, flag: str = "--output", model_flag: str = "--model") -> Path:
    """`output` must not be able to overwrite the model (a checkpoint directory or a .gguf file): it may not be the
    model, hold it, or hold a file (or a link to one) that is one of the model's files. An output inside the model
    directory is fine: training writes only under it. Symlinks are followed; nothing is loaded."""
    target, source = output.resolve(), model.resolve()
    kind = "directory" if source.is_dir() else "file"
    if target == source or target in source.parents:
        relation = "is" if target == source else "holds"
        raise UsageError(
            f"{flag} {output}: {relation} the {model_flag} {kind} {model}; writing there would overwrite the model, "
            "choose another directory"
        )
    model_files = {path.resolve() for path in source.iterdir() if path.is_file()} if kind == "directory" else {source}
    for folder, _, names in os.walk(target) if target.is_dir() else ():
        for name in names:
            entry = Path(folder) / name
            if entry.resolve() in model_files:
                raise UsageError(
                    f"{flag} {output}: {entry} is the {model_flag} file {entry.resolve()}; writing there would "
                    "overwrite the model, choose another directory"
                )
    return output


def output_file(path: Path, flag: str, *, suffixes: tuple[str, ...] = ()) -> Path:
    """`path` must be writable as a file: its directory exists, it is not a directory, its suffix is known."""
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory, expected a file name")
    if path.parent.exists() and not path.parent.is_dir():
        raise UsageError(f"{flag} {path}: lies under the file {path.parent}, expected a directory")
    if not path.parent.is_dir():
        raise UsageError(f"{flag} {path}: the directory {path.parent} does not exist")
    if suffixes and path.suffix.lower().lstrip(".") not in suffixes:
        raise UsageError(f"{flag} {path}: unknown file type {path.suffix!r}; use one of {', '.join(suffixes)}")
    return path


def appendable_file(path: Path, flag: str) -> Path:
    """A file to append to, created with its directories if need be: not a directory, no regular file on the way."""
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory, expected a file name")
    output_directory(path.parent, flag)
    return path


def image_file(path: Path, flag: str) -> Path:
    """A plot path: `output_file` with the suffixes matplotlib can write."""
    from matplotlib.backend_bases import FigureCanvasBase

    return output_file(path, flag, suffixes=tuple(sorted(FigureCanvasBase.get_supported_filetypes())))

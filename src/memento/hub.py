"""Hugging Face hub ids wherever a model or tokenizer is named, resolved as transformers and vLLM resolve them.

`--model Qwen/Qwen3-0.6B` (or ``NAME@REVISION``: a branch, tag or commit) becomes the local snapshot folder
of that repository in the standard cache (``HF_HUB_CACHE`` / ``HF_HOME``), downloaded when missing unless
``HF_HUB_OFFLINE=1``. Everything downstream keeps working on a local folder, so the weights hash of the serve
gate, .gguf conversion and output-apart-from-model checks see real files. A name is a hub id only when it is
not a local path: it does not exist here, is not absolute or relative-looking (``/``, ``.``, ``~``), has at
most one ``/``, and its first part is not an existing local directory (``runs/typo`` stays a missing path).
"""

from __future__ import annotations

import os
from pathlib import Path

from memento.errors import UsageError

CHECKPOINT_FILES = ("*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja")
"""What a checkpoint needs from its repository (config, weights, tokenizer, chat template); not .bin/.gguf."""
TOKENIZER_FILES = ("*.json", "*.model", "*.txt", "*.tiktoken", "*.jinja")


def parse_hub_id(name: str | Path) -> tuple[str, str | None] | None:
    """(repo id, revision or None) when `name` reads as a hub id and not as a local path; else None."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    text = str(name)
    if not text or Path(text).exists() or text.startswith(("/", ".", "~")) or (os.sep != "/" and os.sep in text):
        return None
    repo_id, _, revision = text.partition("@")
    if repo_id.count("/") > 1 or ("/" in repo_id and Path(repo_id.split("/")[0]).is_dir()):
        return None
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return None
    return repo_id, revision or None


def offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it, looked up now (not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "on", "yes", "true"}


def snapshot(repo_id: str, revision: str | None, patterns: tuple[str, ...], flag: str) -> Path:
    """The local folder of `repo_id` at `revision` in the HF cache (downloaded unless offline); one-line errors."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    cache = os.environ.get("HF_HUB_CACHE")
    name = repo_id + (f"@{revision}" if revision else "")
    try:
        folder = snapshot_download(
            repo_id, revision=revision, cache_dir=cache, local_files_only=offline(), allow_patterns=list(patterns)
        )
    except LocalEntryNotFoundError:
        where = cache or constants.HF_HUB_CACHE
        if offline():
            raise UsageError(
                f"{flag} {name}: no such local path, and not in the Hugging Face cache ({where}); HF_HUB_OFFLINE=1 "
                "is set, so nothing is downloaded"
            ) from None
        raise UsageError(f"{flag} {name}: no such local path, and the Hugging Face hub could not be reached") from None
    except RepositoryNotFoundError:
        raise UsageError(f"{flag} {name}: no such local path, and no such repository on the Hugging Face hub") from None
    except (HfHubHTTPError, OSError, ValueError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise UsageError(f"{flag} {name}: no such local path, and the hub did not give it ({reason})") from None
    return Path(folder)


def local_or_hub(path: str | Path, flag: str, *, patterns: tuple[str, ...] = CHECKPOINT_FILES) -> Path:
    """`path` itself when it is a local path (existing or not: its checks come after), else its hub snapshot."""
    parsed = parse_hub_id(path)
    if parsed is None:
        return Path(path)
    return snapshot(*parsed, patterns, flag)

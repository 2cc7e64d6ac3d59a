"""Where memento keeps files it builds once and reuses (converted GGUF checkpoints, tokenizers)."""

from __future__ import annotations

import os
from pathlib import Path

ENVIRONMENT_VARIABLE = "MEMENTO_CACHE"


def cache_root() -> Path:
    """$MEMENTO_CACHE, else $XDG_CACHE_HOME/memento, else ~/.cache/memento (not created here)."""
    configured = os.environ.get(ENVIRONMENT_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "memento"


def cache_path(*parts: str) -> Path:
    """A path under `cache_root()`, e.g. ``cache_path("gguf", digest)``."""
    return cache_root().joinpath(*parts)

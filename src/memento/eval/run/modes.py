"""The modes a run compares side by side: memento attention settings, or plain generation.

================  ==========================================================================
mode              what it runs
================  ==========================================================================
memento           the model with eviction after each memento (keep_last_n_blocks 0)
no_eviction       the same model, blocks never evicted (keep_last_n_blocks -1)
restart           the paper's dual-stream ablation: mementos recomputed without their block
NAME (--config)   the model under any `MementoConfig` given as JSON
baseline          another model (`--baseline-model`) with plain generation
prompted          (``--backend prompted``) memento done by the client on any chat endpoint:
                  `memento.prompted`'s loop, blocks dropped from the conversation
plain             (``--backend prompted``) one plain chain-of-thought call on the same problem
================  ==========================================================================

`parse_memento_config` is the one reader of a memento config given on a command line (JSON text
or a .json file): `memento eval --config` and `memento rl --config` both go through it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memento import textfiles
from memento.config import MementoConfig

BUILTIN_MODES: dict[str, dict[str, Any]] = {
    "memento": {"keep_last_n_blocks": 0},
    "no_eviction": {"keep_last_n_blocks": -1},
    "restart": {"keep_last_n_blocks": 0, "restart_mode": True},
}
BASELINE = "baseline"
EXTRA_MODE = "config"
"""Name of a `--config` mode given without ``NAME=``."""
PROMPTED_MODES = ("prompted", "plain")
"""The modes of the prompted backend (no memento attention: the endpoint is any chat model)."""

_MODE_NAME = re.compile(r"[A-Za-z][\w.-]*")
_NAMING_RULE = "use letters, digits, '_', '-' or '.', starting with a letter"


@dataclass(frozen=True)
class Mode:
    """One column of the comparison.

    `config` None is plain generation (no memento attention at all); `model` None is the run's
    model, otherwise the path or served name of the model this mode runs (the baseline).
    """

    name: str
    config: MementoConfig | None
    model: str | None = None

    def __post_init__(self) -> None:
        if not _MODE_NAME.fullmatch(self.name):
            raise ValueError(f"mode name {self.name!r}: {_NAMING_RULE}")

    @property
    def replay_config(self) -> MementoConfig:
        """The attention rule its responses are replayed with for KV (plain causal when None)."""
        return self.config if self.config is not None else MementoConfig.disabled()

    def describe(self) -> dict[str, Any]:
        """JSON-ready: the config in the authors' spelling, and the model when it is not the run's."""
        return {"config": None if self.config is None else self.config.to_dict(), "model": self.model}


def builtin_mode(name: str, mask_delimiters: bool) -> Mode:
    """`memento`, `no_eviction` or `restart` with the model's `mask_delimiters`."""
    if name not in BUILTIN_MODES:
        raise ValueError(f"unknown mode {name!r}; choose from {', '.join(BUILTIN_MODES)} (or give --config)")
    return Mode(name, MementoConfig(mask_delimiters=mask_delimiters, **BUILTIN_MODES[name]))


def parse_memento_config(text: str, mask_delimiters: bool) -> MementoConfig:
    """A `MementoConfig` from JSON text, or from the .json file that `text` names.

    The JSON means what the authors' BlockMaskingConfig means: off unless ``"enable": true``.
    `mask_delimiters` fills in when the JSON leaves it out (pass the model family's setting).
    Raises ValueError with one line: not JSON, not an object, a missing file, a bad option.
    """
    text = text.strip()
    where = ""
    if not text.startswith("{") and text.endswith(".json"):
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"{path}: no such memento config file")
        text, where = textfiles.read_text(path, error=ValueError), f"{path}: "
    try:
        options = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}") from None
    if not isinstance(options, dict):
        raise ValueError(f"{where}expected a JSON object of memento options, got {type(options).__name__}")
    options.setdefault("mask_delimiters", mask_delimiters)
    try:
        return MementoConfig.from_dict(options)
    except ValueError as error:
        raise ValueError(f"{where}{error}") from None


def extra_mode(text: str, mask_delimiters: bool) -> Mode:
    """A mode from ``CONFIG`` or ``NAME=CONFIG``, CONFIG a memento config as JSON or a .json file
    (see `parse_memento_config`); `mask_delimiters` fills in when the config leaves it out.

    Text with an ``=`` before any ``{`` (and not the name of an existing file) is ``NAME=CONFIG``: a NAME
    that is no mode name is refused as such, not read as JSON."""
    text = text.strip()
    name, body = EXTRA_MODE, text
    head, equals, rest = text.partition("=")
    if equals and "{" not in head and not Path(text).is_file():
        name, body = head.strip(), rest
        if not _MODE_NAME.fullmatch(name):
            raise ValueError(f"--config {text[:60]}: the mode name {name!r} before '=' is not a name: {_NAMING_RULE}")
    try:
        return Mode(name, parse_memento_config(body, mask_delimiters))
    except ValueError as error:
        raise ValueError(f"--config {name}: {error}") from None


def resolve_modes(
    names: Sequence[str],
    mask_delimiters: bool,
    *,
    extra: Sequence[str] = (),
    baseline_model: str | None = None,
) -> list[Mode]:
    """Built-in `names` in order, then the `--config` modes, then the baseline; names must be unique."""
    modes = [builtin_mode(name, mask_delimiters) for name in names]
    modes += [extra_mode(text, mask_delimiters) for text in extra]
    if baseline_model is not None:
        modes.append(Mode(BASELINE, None, model=baseline_model))
    seen: set[str] = set()
    for mode in modes:
        if mode.name in seen:
            raise ValueError(f"mode {mode.name!r} is given twice")
        seen.add(mode.name)
    if not modes:
        raise ValueError("no modes to run")
    return modes


def prompted_modes(names: Sequence[str]) -> list[Mode]:
    """The prompted backend's modes `names` (from `PROMPTED_MODES`), in order, each at most once."""
    unknown = [name for name in names if name not in PROMPTED_MODES]
    if unknown:
        raise ValueError(
            f"unknown mode(s) {', '.join(unknown)} in --modes; the prompted backend runs {', '.join(PROMPTED_MODES)}"
        )
    if len(set(names)) != len(names):
        raise ValueError("a mode is given twice in --modes")
    if not names:
        raise ValueError("no modes to run")
    return [Mode(name, None) for name in names]

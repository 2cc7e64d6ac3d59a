"""The prompts of prompted mode: ours by default (`default_prompts.toml`), overridable with a file.

A prompt file is TOML with any of the keys of `PromptTemplates`; keys left out keep the default.
Placeholders are names in braces (``{problem}``); only known names are filled, so ``\\boxed{}`` and
LaTeX braces pass through untouched. Filling is one pass: braces inside a filled-in value (a
problem's own ``{x}``) are never filled again.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

from memento import textfiles
from memento.format import BLOCK_END, BLOCK_START, SUMMARY_END, SUMMARY_START, THINK_END

ANSWER_MARKER = THINK_END
"""What opens the final answer in a reply (the memento format's end of thinking)."""

WORDS_PER_TOKEN = 0.75
"""English words per token, to state the block budget in words (models do not count tokens)."""

DEFAULT_PROMPTS = "default_prompts.toml"

_PLACEHOLDER = re.compile(r"\{(\w+)\}")

_REQUIRED: dict[str, tuple[str, ...]] = {
    "system": (),
    "round": ("problem",),
    "memento_item": ("number", "memento"),
    "no_mementos": (),
    "memento_request": (),
    "final_answer": ("problem",),
    "plain": ("problem",),
}


class PromptFileError(ValueError):
    """A prompt file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class PromptTemplates:
    """Every text prompted mode sends; see `default_prompts.toml` for placeholders and defaults."""

    system: str
    round: str
    memento_item: str
    no_mementos: str
    memento_request: str
    final_answer: str
    plain: str

    def __post_init__(self) -> None:
        for name, required in _REQUIRED.items():
            template = getattr(self, name)
            if not isinstance(template, str):
                raise PromptFileError(f"key '{name}': expected a string, got {type(template).__name__}")
            missing = [p for p in required if f"{{{p}}}" not in template]
            if missing:
                raise PromptFileError(f"key '{name}': missing the placeholder {{{missing[0]}}}")


def fill(template: str, values: dict[str, object]) -> str:
    """`template` with every ``{name}`` whose name is in `values` replaced (one pass); other braces kept."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(values[name]) if name in values else match.group(0)

    return _PLACEHOLDER.sub(replace, template)


def format_values(*, block_tokens: int, memento_tokens: int, max_rounds: int) -> dict[str, object]:
    """The placeholders every template may use."""
    return {
        "block_start": BLOCK_START,
        "block_end": BLOCK_END,
        "summary_start": SUMMARY_START,
        "summary_end": SUMMARY_END,
        "answer_marker": ANSWER_MARKER,
        "block_tokens": block_tokens,
        "block_words": max(1, round(block_tokens * WORDS_PER_TOKEN)),
        "memento_tokens": memento_tokens,
        "max_rounds": max_rounds,
    }


def _read_toml(text: str, source: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PromptFileError(f"{source}: not valid TOML: {error}") from None


def default_prompts_text() -> str:
    """The default prompt file, as shipped (a starting point for an override)."""
    return resources.files("memento.prompted").joinpath(DEFAULT_PROMPTS).read_text(encoding="utf-8")


def load_prompts(path: str | Path | None = None) -> PromptTemplates:
    """The default templates, with the keys of the TOML file at `path` (if any) replacing theirs."""
    values = _read_toml(default_prompts_text(), DEFAULT_PROMPTS)
    if path is None:
        return PromptTemplates(**values)  # type: ignore[arg-type]
    path = Path(path)
    try:
        text = textfiles.read_text(path, error=PromptFileError)
    except OSError as error:
        raise PromptFileError(f"{path}: cannot read the prompt file ({error.strerror})") from None
    override = _read_toml(text, str(path))
    known = {f.name for f in fields(PromptTemplates)}
    unknown = sorted(set(override) - known)
    if unknown:
        raise PromptFileError(f"{path}: unknown key '{unknown[0]}'; expected some of {', '.join(sorted(known))}")
    try:
        return PromptTemplates(**{**values, **override})  # type: ignore[arg-type]
    except PromptFileError as error:
        raise PromptFileError(f"{path}: {error}") from None

"""Command-line options generated from dataclasses, so that each default and help text lives in one place.

A field becomes ``--field-name`` (or its ``metadata["flag"]``, plus any ``metadata["aliases"]``),
typed from its annotation, with its default and ``metadata["help"]``, as transformers'
`HfArgumentParser` does; booleans become ``--x/--no-x``, `Literal` fields get choices, tuple fields
are repeatable flags; ``metadata["cli"] = False`` gives a field no flag (it keeps its default).
`from_args` builds the dataclass back from the parsed namespace, so its ``__post_init__``
validates what the user typed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from memento.cli.parsing import BooleanOptional
from memento.config import MementoConfig, default_mask_delimiters
from memento.errors import UsageError

T = TypeVar("T")
_METAVARS = {int: "N", float: "X", str: "TEXT", Path: "PATH"}


def _selected(cls: type, only: Collection[str] | None, exclude: Collection[str]) -> list[dataclasses.Field]:
    chosen = [
        f
        for f in dataclasses.fields(cls)
        if (only is None or f.name in only) and f.name not in exclude and f.metadata.get("cli", True)
    ]
    unknown = set(only or ()) - {f.name for f in chosen}
    if unknown:
        raise TypeError(f"{cls.__name__} has no fields {sorted(unknown)}")
    return chosen


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def flag_name(field: dataclasses.Field) -> str:
    """``--field-name``, or the field's ``metadata["flag"]``."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _argument(field: dataclasses.Field, annotation: Any, help_text: str | None) -> dict[str, Any]:
    kind = _strip_optional(annotation)
    default = field.default
    if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    argument: dict[str, Any] = {"dest": field.name, "help": help_text}
    if default is dataclasses.MISSING:
        argument["required"] = True
    else:
        argument["default"] = default
        if kind is not bool and default is not None and default != ():
            argument["help"] = f"{help_text or ''} (default: {default})".lstrip()
    if kind is bool:
        return {**argument, "action": BooleanOptional}
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        return {**argument, "type": type(choices[0]), "choices": choices}
    if typing.get_origin(kind) in (tuple, list):
        # repeatable; None means "not given" so that from_args keeps the field's default
        element = typing.get_args(kind)[0]
        return {**argument, "type": element, "action": "append", "default": None, "metavar": _METAVARS[element]}
    if kind in (int, float, str, Path):
        return {**argument, "type": kind, "metavar": _METAVARS[kind]}
    raise TypeError(f"{field.name}: no command-line form for {annotation!r}")


def add_options(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    title: str | None = None,
    only: Collection[str] | None = None,
    exclude: Collection[str] = (),
    helps: Mapping[str, str] | None = None,
) -> None:
    """Add one option per field of dataclass `cls` (`only` / `exclude` choose fields; `helps` overrides help)."""
    target = parser.add_argument_group(title) if title else parser
    hints = typing.get_type_hints(cls)
    for field in _selected(cls, only, exclude):
        help_text = (helps or {}).get(field.name, field.metadata.get("help"))
        flags = (flag_name(field), *field.metadata.get("aliases", ()))
        target.add_argument(*flags, **_argument(field, hints[field.name], help_text))


def from_args(
    cls: type[T],
    args: argparse.Namespace,
    *,
    only: Collection[str] | None = None,
    exclude: Collection[str] = (),
    **overrides: Any,
) -> T:
    """The dataclass `cls` from the options `add_options` added (same `only` / `exclude`), plus `overrides`.

    A value its ``__post_init__`` refuses (a `ValueError`) becomes a `UsageError`.
    """
    values: dict[str, Any] = {}
    for field in _selected(cls, only, exclude):
        value = getattr(args, field.name)
        if isinstance(value, list):
            value = tuple(value)
        if value is not None or field.default is None:
            values[field.name] = value
    values.update(overrides)
    try:
        return cls(**values)
    except UsageError:
        raise
    except ValueError as error:
        raise UsageError(str(error)) from None


# The memento attention options every command that applies the rule takes (`enable` and the rest
# are the JSON config's business: `--block-masking-config`).
MEMENTO_OPTIONS = (
    "keep_last_n_blocks",
    "mask_delimiters",
    "restart_mode",
    "keep_last_block_for_answer",
    "max_block_tokens",
    "require_assistant_section",
)


def add_memento_options(parser: argparse.ArgumentParser) -> None:
    """The `MementoConfig` flags (`--keep-last-n`, `--mask-delimiters/--no-mask-delimiters`, ...)."""
    add_options(
        parser,
        MementoConfig,
        title="memento attention",
        only=MEMENTO_OPTIONS,
        helps={
            "mask_delimiters": "also evict <|block_start|>/<|block_end|> "
            "(default: per model family; Phi-4 yes, Qwen3/Olmo 3 no)"
        },
    )


def memento_config(args: argparse.Namespace, model_type: str | None) -> MementoConfig:
    """The `MementoConfig` the flags ask for; `mask_delimiters` unset follows the model family."""
    mask_delimiters = args.mask_delimiters
    if mask_delimiters is None:
        mask_delimiters = default_mask_delimiters(model_type or "")
    return from_args(MementoConfig, args, only=MEMENTO_OPTIONS, mask_delimiters=mask_delimiters)


def checkpoint_model_type(path: Path) -> str | None:
    """The `model_type` in a checkpoint directory's (or a config.json file's) config, None when there is none."""
    config_file = path if path.is_file() else path / "config.json"
    if not config_file.is_file():
        return None
    try:
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, AttributeError):
        raise UsageError(f"{config_file}: not a JSON object (a Hugging Face config.json)") from None
    return model_type if isinstance(model_type, str) else None

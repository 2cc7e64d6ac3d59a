"""`python -m memento.prompted ...`: the `memento prompted` command until the `memento` CLI wires it.

Flags are generated from `PromptedOptions`' fields (``--block-tokens`` for `block_tokens`; help
from each field's metadata; booleans as ``--flag/--no-flag``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Sequence

from memento.prompted.config import PromptedOptions
from memento.prompted.runner import run_prompted


def build_parser() -> argparse.ArgumentParser:
    """An argparse parser with one flag per `PromptedOptions` field."""
    parser = argparse.ArgumentParser(
        prog="memento prompted",
        description="Memento for any OpenAI-compatible chat model: blocks closed by mementos, blocks dropped.",
    )
    hints = typing.get_type_hints(PromptedOptions)
    for field in dataclasses.fields(PromptedOptions):
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        if isinstance(kind, types.UnionType):  # `X | None`
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        required = field.default is dataclasses.MISSING
        default = None if required else field.default
        help_text = field.metadata.get("help", "")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=default, required=required, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        options = PromptedOptions(**vars(args))
    except ValueError as error:
        print(f"memento prompted: {error}", file=sys.stderr)
        return 2
    return run_prompted(options)


if __name__ == "__main__":
    sys.exit(main())

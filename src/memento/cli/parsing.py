"""`Parser`: memento's `argparse.ArgumentParser`, for every command. What argparse leaves silent, it says:

- errors are one line (the usage is one ``--help`` away);
- an unrecognized flag names the flag meant: a registered hint (`add_hint`: a Trainer spelling of a
  memento flag, ``--output_dir`` -> ``--output``), the same flag with dashes for underscores
  (``--learning_rate`` -> ``--learning-rate``), or the closest spelling;
- a flag given more than once keeps the last value (as argparse and vLLM do), and a note on stderr
  says which (``--epochs 1, then --epochs 2: the last is used``). Repeatable flags (``action="append"``)
  are not repeats.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn


class _Recorded(argparse.Action):
    """Records each use on the parser (`Parser.given`) before storing, so that a repeat can be named."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option=None):
        if option is not None and isinstance(parser, Parser):
            parser.given.setdefault(self.dest, []).append((option, values))
        super().__call__(parser, namespace, values, option)  # type: ignore[misc]


def _recorded(action: type[argparse.Action]) -> type[argparse.Action]:
    return type(f"Recorded{action.__name__.lstrip('_')}", (_Recorded, action), {})


_STORE = _recorded(argparse._StoreAction)
BooleanOptional = _recorded(argparse.BooleanOptionalAction)
"""``--x/--no-x``, recorded (`memento.cli.options` gives boolean fields this action)."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, whose unknown flags name the flag meant, and whose repeated
    flags are named."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hints: dict[str, str] = {}
        self.given: dict[str, list[tuple[str, Any]]] = {}
        for name in (None, "store"):
            self.register("action", name, _STORE)
        self.register("action", "store_const", _recorded(argparse._StoreConstAction))
        self.register("action", "store_true", _recorded(argparse._StoreTrueAction))
        self.register("action", "store_false", _recorded(argparse._StoreFalseAction))

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        self.given = {}
        return super().parse_known_args(args, namespace)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        command = self._command(parsed)
        if extras:
            command.error(f"unrecognized arguments: {' '.join(extras)}{command.suggestions(extras)}")
        for line in command.repeats():
            print(f"{command.prog}: note: {line}", file=sys.stderr)
        return parsed

    def _command(self, parsed: argparse.Namespace) -> Parser:
        """The subcommand's parser that read the options (this one when there are no subcommands)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(parsed, action.dest, None) or "")
                if isinstance(chosen, Parser):
                    return chosen._command(parsed)
        return self

    def suggestions(self, extras: Sequence[str]) -> str:
        """``; --output_dir: did you mean --output?`` for each unknown flag a flag of this parser is meant by."""
        known = [option for option in self._option_string_actions if option.startswith("--")]
        found = []
        for token in extras:
            flag = token.split("=", 1)[0]
            if not flag.startswith("--") or flag in self._option_string_actions:
                continue
            dashed = "--" + flag[2:].replace("_", "-")
            meant = self.hints.get(flag) or self.hints.get(dashed)
            if meant is None and dashed in self._option_string_actions:
                meant = f"did you mean {dashed}?"
            if meant is None:
                close = difflib.get_close_matches(dashed, known, n=1, cutoff=0.75)
                meant = f"did you mean {close[0]}?" if close else None
            if meant:
                found.append(f"{flag}: {meant}")
        return "; " + "; ".join(found) if found else ""

    def repeats(self) -> list[str]:
        """One line per option given more than once in the last parse, naming the value kept (the last)."""
        lines = []
        for uses in self.given.values():
            if len(uses) > 1:
                typed = ", then ".join(_typed(option, value) for option, value in uses)
                lines.append(f"{typed}: the last is used")
        return lines


def add_hint(parser: argparse.ArgumentParser, flag: str, hint: str) -> None:
    """Have `parser` answer an unrecognized `flag` with `hint` (e.g. ``--output_dir`` -> "memento's --output")."""
    if isinstance(parser, Parser):
        parser.hints[flag] = hint


def _typed(option: str, value: Any) -> str:
    """The option as typed, roughly: ``--epochs 2.0``, ``--data a b``, ``--packing``."""
    if value is None or value == []:
        return option
    if isinstance(value, list):
        return " ".join([option, *map(str, value)])
    return f"{option} {value}"

"""Every `memento` command line the README shows parses with today's flags."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from memento.cli import build_parser, split_passthrough

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_commands() -> list[str]:
    """`.venv/bin/memento ...` invocations, in code blocks (continuation lines joined) and inline code."""
    text = README.read_text(encoding="utf-8").replace("\\\n", " ")
    commands = []
    for match in re.finditer(r"\.venv/bin/memento ([^`\n]+)", text):
        command = match.group(1).split("  #")[0].strip()
        if "..." not in shlex.split(command):  # a placeholder, not an invocation
            commands.append(command)
    return commands


def test_the_readme_documents_every_command():
    names = {shlex.split(c)[0] for c in documented_commands()}
    assert names == {"kv", "generate", "train", "serve", "demo", "toy", "data", "eval", "prompted", "rl"}


@pytest.mark.parametrize("command", documented_commands())
def test_documented_invocation_parses(command):
    argv, passthrough = split_passthrough(shlex.split(command))
    args = build_parser().parse_args(argv)  # exits (a test failure) on an unknown or malformed flag
    assert args.command == argv[0] and callable(args.run)
    assert not passthrough or hasattr(args, "passthrough")

"""The `memento` command: one module per subcommand, listed in `COMMANDS`.

A command module has `NAME`, `HELP`, `configure(parser)` (adds its options and
``parser.set_defaults(run=...)``) and the run function(s), which return an exit code. Only the chosen
command's parser is configured, so `memento kv` never imports the training stack. Adding a command
is one import and one entry in `COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection, Sequence

from memento.cli import data, demo, generate, kv, prompted, rl, serve, toy, train, verify
from memento.cli import eval as evaluate
from memento.cli.parsing import Parser

COMMANDS = (kv, generate, train, serve, verify, demo, toy, data, evaluate, prompted, rl)


def build_parser(configured: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The `memento` parser; only the commands named in `configured` (all when None) get their options."""
    parser = Parser(prog="memento", description="Memento: reasoning in blocks with KV eviction.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        subparser = commands.add_parser(command.NAME, help=command.HELP, description=command.HELP)
        if configured is None or command.NAME in configured:
            command.configure(subparser)
    return parser


def split_passthrough(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(memento's arguments, the arguments after ``--``): `memento serve ... -- --vllm-flag` hands the rest on."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    index = argv.index("--")
    return argv[:index], argv[index + 1 :]


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `memento` console command; returns the exit code.

    Bad input (a `ValueError`, e.g. `memento.errors.UsageError` or `TraceFormatError`, or a missing or
    wrong kind of file) is one line on stderr and exit code 2; anything else is a bug and keeps its
    traceback.
    """
    argv, passthrough = split_passthrough(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[:1])
    args = parser.parse_args(argv)
    if passthrough:
        if not hasattr(args, "passthrough"):
            parser.error(f"`memento {args.command}` takes no arguments after --")
        args.passthrough = passthrough
    where = f"memento {args.command}"
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as error:
        print(f"{where}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130

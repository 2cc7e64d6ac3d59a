"""`memento prompted`: memento for any OpenAI-compatible chat model, done by the client (memento.prompted)."""

from __future__ import annotations

import argparse

from memento.cli import options, paths

NAME = "prompted"
HELP = "memento for any chat endpoint: blocks closed by mementos, each block dropped by the client"


def configure(parser: argparse.ArgumentParser) -> None:
    """One flag per `PromptedOptions` field (its default and help live there)."""
    from memento.prompted.config import PromptedOptions

    parser.description = (
        "Each round the model sees the problem and its mementos so far and writes one block closed by a "
        "memento; the block is dropped. With --json, stdout's last line is the last problem's result."
    )
    options.add_options(parser, PromptedOptions)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Solve the problems; 0 when all were solved, 1 when some failed at the endpoint, 2 for bad input."""
    from memento.prompted.config import PromptedOptions
    from memento.prompted.runner import run_prompted

    prompted = options.from_args(PromptedOptions, args)
    if prompted.file is not None:
        paths.existing_file(prompted.file, "--file")
    if prompted.output is not None:
        paths.appendable_file(prompted.output, "--output")
    return run_prompted(prompted)

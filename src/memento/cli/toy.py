"""`memento toy train`: train the toy model through the real two-stage `memento train` path."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

from memento.cli import paths

NAME = "toy"
HELP = "the synthetic task and its tiny model"

# train_toy's keyword arguments the command exposes (their defaults are read from its signature)
_OVERRIDES = {
    "examples": (int, "training problems"),
    "epochs": (float, "stage 1 (full attention) epochs"),
    "memento_epochs": (float, "stage 2 (memento attention) epochs"),
    "full_attention_fraction": (float, "stage 2 share of plain causal examples"),
    "learning_rate": (float, "peak learning rate"),
    "seed": (int, "random seed"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `memento toy train` and its options."""
    from memento.toy.train import train_toy

    commands = parser.add_subparsers(dest="toy_command", required=True, metavar="{train}")
    train = commands.add_parser(
        "train", help="train the toy model through `memento train --stage both` (about 18 minutes on 2 CPU cores)"
    )
    train.add_argument("--output", type=Path, default=Path("runs/toy"), help="output directory (default: runs/toy)")
    defaults = inspect.signature(train_toy).parameters
    for name, (kind, help_text) in _OVERRIDES.items():
        default = defaults[name].default
        flag, metavar = "--" + name.replace("_", "-"), "N" if kind is int else "X"
        train.add_argument(flag, type=kind, default=default, metavar=metavar, help=f"{help_text} (default: {default})")
    train.add_argument("--install", action="store_true", help="replace the embedded default model")
    train.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Train the toy model (and install it as the embedded default with --install)."""
    from memento.toy.train import train_toy

    paths.output_directory(args.output, "--output")
    final = train_toy(args.output, install=args.install, **{name: getattr(args, name) for name in _OVERRIDES})
    print(f"toy model trained into {final}" + (" and installed as the embedded default" if args.install else ""))
    return 0

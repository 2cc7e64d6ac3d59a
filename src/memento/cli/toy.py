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
    "batch_size": (int, "examples per optimizer step"),
    "seed": (int, "random seed"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `memento toy train` and its options."""
    from memento.toy.tasks import DEFAULT_TASK, TASKS
    from memento.toy.train import train_toy

    commands = parser.add_subparsers(dest="toy_command", required=True, metavar="{train}")
    train = commands.add_parser(
        "train", help="train the toy model through `memento train --stage both` (about 18 minutes on 2 CPU cores)"
    )
    train.add_argument("--output", type=Path, default=Path("runs/toy"), help="output directory (default: runs/toy)")
    train.add_argument(
        "--task",
        choices=list(TASKS),
        default=DEFAULT_TASK,
        help=f"the task to train on (default: {DEFAULT_TASK}, the embedded model's; key: the dual-stream variant)",
    )
    defaults = inspect.signature(train_toy).parameters
    for name, (kind, help_text) in _OVERRIDES.items():
        default = defaults[name].default
        flag, metavar = "--" + name.replace("_", "-"), "N" if kind is int else "X"
        train.add_argument(flag, type=kind, default=default, metavar=metavar, help=f"{help_text} (default: {default})")
    train.add_argument(
        "--init-from",
        type=Path,
        default=None,
        metavar="DIR",
        help="start from this toy checkpoint (e.g. the embedded model) instead of a fresh one",
    )
    train.add_argument("--install", action="store_true", help="replace the embedded default model")
    train.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Train the toy model (and install it as the embedded default with --install)."""
    from memento.toy.tasks import DEFAULT_TASK, task_by_name
    from memento.toy.train import train_toy

    if args.install and args.task != DEFAULT_TASK:
        raise ValueError(f"--install replaces the embedded {DEFAULT_TASK!r} model; train --task {args.task} without it")
    paths.output_directory(args.output, "--output")
    if args.init_from is not None:
        paths.checkpoint_directory(args.init_from, "--init-from")
    overrides = {name: getattr(args, name) for name in _OVERRIDES}
    final = train_toy(
        args.output, task=task_by_name(args.task), install=args.install, init_from=args.init_from, **overrides
    )
    print(f"toy model trained into {final}" + (" and installed as the embedded default" if args.install else ""))
    return 0

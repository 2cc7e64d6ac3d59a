"""`memento train`: two-stage SFT (full causal attention, then memento attention) on a local checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from memento.cli import options, paths

NAME = "train"
HELP = "two-stage SFT: full causal attention, then memento attention"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `memento train` to its parser (the hyperparameters come from `TrainOptions`)."""
    from memento.training import TrainOptions
    from memento.training.trainer import STAGES

    parser.description = (
        "Add the memento tokens to a local checkpoint and fine-tune it on memento traces "
        "(authors' JSON, data-pipeline JSONL, or memento text). Defaults are the paper's."
    )
    parser.add_argument("--model", type=Path, required=True, help="local Hugging Face checkpoint directory")
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="training traces")
    parser.add_argument("--eval-data", type=Path, nargs="+", default=None, help="eval traces (keeps the best epoch)")
    parser.add_argument("--output", type=Path, required=True, help="output directory")
    parser.add_argument("--stage", choices=STAGES, default="both", help="full, memento, or both in turn")
    options.add_options(parser, TrainOptions, title="training")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check the paths and options, then train."""
    from memento.training import TrainOptions, train

    train_options = options.from_args(TrainOptions, args)
    paths.checkpoint_directory(args.model, "--model")
    for flag, files in (("--data", args.data), ("--eval-data", args.eval_data or ())):
        for path in files:
            paths.existing_file(path, flag)
    paths.output_directory(args.output, "--output")
    final = train(args.model, args.data, args.output, stage=args.stage, options=train_options, eval_data=args.eval_data)
    print(f"model and tokenizer saved to {final}")
    return 0

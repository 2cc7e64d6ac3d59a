"""`memento train`: two-stage SFT (full causal attention, then memento attention) of a local model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memento.cli import options, paths

NAME = "train"
HELP = "two-stage SFT: full causal attention, then memento attention"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `memento train` (hyperparameters from `TrainOptions`, data choice from `DataSelection`)."""
    from memento.training import DataSelection, TrainOptions
    from memento.training.arguments import add_trainer_flags
    from memento.training.options import STAGES

    parser.description = (
        "Add the memento tokens to a local checkpoint (or .gguf file) and fine-tune it on memento traces "
        "(authors' JSON, data-pipeline JSONL, memento text) or OpenMementos rows (hub name, local "
        "parquet/JSONL). Defaults are the paper's. Runs across processes as launched (torchrun, accelerate "
        "launch, DeepSpeed via --deepspeed CONFIG.json); every other transformers.TrainingArguments field is a "
        "flag too."
    )
    parser.add_argument(
        "--model", type=Path, required=True, help="checkpoint directory, .gguf file, or hub id ORG/NAME[@REVISION]"
    )
    parser.add_argument(
        "--data",
        nargs="+",
        required=True,
        help="training data: trace files, OpenMementos .parquet/.jsonl files or folders, or a hub name "
        "(e.g. microsoft/OpenMementos)",
    )
    parser.add_argument(
        "--eval-data", nargs="+", default=None, help="eval data, same kinds as --data (keeps the best epoch)"
    )
    parser.add_argument("--output", type=Path, required=True, help="output directory")
    parser.add_argument("--stage", choices=STAGES, default="both", help="full, memento, or both in turn")
    options.add_options(parser, TrainOptions, title="training")
    options.add_options(parser, DataSelection, title="data selection (applies to --data)")
    add_trainer_flags(parser)  # every other TrainingArguments field: --deepspeed, --fsdp, --optim, ...
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check the model, data and output locations, then train."""
    from memento.training import DataSelection, TrainOptions, distributed, train
    from memento.training.arguments import trainer_arguments_from
    from memento.training.run_folder import check_output_folder

    trainer_arguments = trainer_arguments_from(args)
    train_options = options.from_args(TrainOptions, args, trainer_arguments=trainer_arguments)
    selection = options.from_args(DataSelection, args)
    for flag, locations in (("--data", args.data), ("--eval-data", args.eval_data or ())):
        for location in locations:
            check_data_location(location, flag)
    paths.output_directory(args.output, "--output")
    check_output_folder(args.output, args.stage, resume=train_options.resume, overwrite=train_options.overwrite)
    note = distributed.launch_note()
    if note:
        print(f"memento train: {note}", file=sys.stderr)
    if Path(args.model).exists():  # a missing --model is model_checkpoint's to name
        paths.output_apart_from_model(args.output, args.model)  # before anything loads or converts
    model = paths.model_checkpoint(args.model, "--model")  # a .gguf is converted once (cached)
    paths.output_apart_from_model(args.output, model)  # and apart from the checkpoint a .gguf became
    try:
        final = train(
            model,
            args.data,
            args.output,
            stage=args.stage,
            options=train_options,
            eval_data=args.eval_data,
            selection=selection,
        )
    except RuntimeError as error:  # a collective that timed out: which rank stopped answering, in one line
        distributed.report_timeout(error)
        raise
    if distributed.rank() == 0:
        print(f"model and tokenizer saved to {final}")
    distributed.finish()
    return 0


def check_data_location(location: str, flag: str) -> str:
    """The kind of a data location (`training.sources.location_kind`); a missing local one is a `UsageError`."""
    from memento.errors import UsageError
    from memento.training.sources import location_kind

    try:
        return location_kind(location)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(f"{flag} {error}") from None

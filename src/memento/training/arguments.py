"""The `TrainingArguments` of a stage: memento's own options merged with any other `Trainer` argument.

`memento train` defines some of the Trainer's arguments itself (`MEMENTO_OWNED`: learning rate,
epochs, batch size, ...; a `TrainOptions` field each). Every other `TrainingArguments` field is a
flag of `memento train` too, parsed the way `HfArgumentParser` parses it (TRL's way: its configs
extend `TrainingArguments`), e.g. ``--deepspeed ds.json``, ``--fsdp "full_shard auto_wrap"``,
``--ddp-find-unused-parameters false``, ``--lr-scheduler-type linear``. The flags given land in
`TrainOptions.trainer_arguments` and override memento's defaults for those fields (`stage_arguments`).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import HfArgumentParser, TrainingArguments

from memento.cli.parsing import add_hint
from memento.errors import UsageError
from memento.training import distributed

if TYPE_CHECKING:
    from memento.training.options import TrainOptions

MEMENTO_FLAGS: dict[str, str] = {
    "output_dir": "--output",  # one folder per stage
    "learning_rate": "--learning-rate",
    "num_train_epochs": "--epochs",  # and --memento-epochs
    "per_device_train_batch_size": "--batch-size",
    "per_device_eval_batch_size": "--batch-size",
    "gradient_accumulation_steps": "--gradient-accumulation-steps",
    "warmup_steps": "--warmup-ratio",
    "weight_decay": "--weight-decay",
    "max_grad_norm": "--max-grad-norm",
    "bf16": "--bf16",
    "seed": "--seed",
    "data_seed": "--seed",
    "logging_steps": "--logging-steps",
    "save_strategy": "--save-steps",
    "save_steps": "--save-steps",
    "save_total_limit": "--save-total-limit",
    "eval_strategy": "--eval-data or --eval-fraction",
    "eval_steps": "--save-steps",
    "load_best_model_at_end": "--eval-data or --eval-fraction",
    "metric_for_best_model": "--eval-data or --eval-fraction",
    "gradient_checkpointing": "--gradient-checkpointing",
    "train_sampling_strategy": "--group-by-length",
    "resume_from_checkpoint": "--resume",
    "remove_unused_columns": "",  # the collator reads columns the model does not take
    "do_train": "",
    "do_eval": "",
    "do_predict": "",
    "local_rank": "",  # set by the launcher
}
"""`TrainingArguments` fields a `memento train` option sets, with that option ("": none, memento decides)."""

MEMENTO_OWNED = frozenset(MEMENTO_FLAGS)
"""`TrainingArguments` fields a `memento train` option sets (never a passed-through flag)."""


COLLECTIVE_TIMEOUT_S = 600
"""memento's default ``--ddp-timeout``: seconds a process waits in a collective (gloo, NCCL) for the others
before the run ends naming the rank that stopped answering (`memento.training.heartbeat`); transformers'
own default is 1800."""


def trainer_fields() -> list[dataclasses.Field]:
    """The `TrainingArguments` fields `memento train` takes as they are, types resolved (copies)."""
    hints = typing.get_type_hints(TrainingArguments)
    fields = []
    for field in dataclasses.fields(TrainingArguments):
        if field.init and field.name not in MEMENTO_OWNED:
            field = copy.copy(field)  # HfArgumentParser rewrites `type` in place
            field.type = hints[field.name]
            fields.append(field)
    return fields


def add_trainer_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per `trainer_fields()` entry (``--name`` and ``--name-with-dashes``), absent unless given."""
    group = parser.add_argument_group(
        "Trainer arguments (transformers.TrainingArguments; memento's own options above take precedence)"
    )
    for field in trainer_fields():
        HfArgumentParser._parse_dataclass_field(group, field)
    for action in group._group_actions:
        action.default = argparse.SUPPRESS  # so that only what the user typed overrides memento's defaults
    for name, flag in MEMENTO_FLAGS.items():  # a Trainer spelling of a memento option names the option
        hint = f"did you mean {flag}? (memento train's option for TrainingArguments.{name})"
        if not flag:
            hint = f"memento train sets TrainingArguments.{name} itself"
        for spelling in {f"--{name}", "--" + name.replace("_", "-")}:
            add_hint(parser, spelling, hint)


def trainer_arguments_from(args: argparse.Namespace) -> dict[str, Any]:
    """The Trainer arguments given on the command line (`add_trainer_flags`), by field name."""
    return {field.name: getattr(args, field.name) for field in trainer_fields() if hasattr(args, field.name)}


def check_trainer_arguments(arguments: Mapping[str, Any]) -> None:
    """Refuse names that are not `TrainingArguments` fields or that a memento option owns (`UsageError`)."""
    known = {field.name for field in dataclasses.fields(TrainingArguments)}
    unknown = sorted(set(arguments) - known)
    if unknown:
        raise UsageError(f"trainer_arguments: {unknown} are not transformers.TrainingArguments fields")
    owned = sorted(set(arguments) & MEMENTO_OWNED)
    if owned:
        raise UsageError(f"trainer_arguments: {owned} are set by memento train's own options, not passed through")
    if arguments.get("fsdp_config") is not None and not arguments.get("fsdp"):
        raise UsageError(
            "--fsdp-config: FSDP is off, so its config would be ignored; turn FSDP on with --fsdp "
            '(e.g. --fsdp "full_shard auto_wrap") or leave --fsdp-config out'
        )
    for name in ("deepspeed", "fsdp_config"):
        if isinstance(arguments.get(name), str):
            _json_object_file(arguments[name], "--" + name.replace("_", "-"))


def _json_object_file(path: str, flag: str) -> None:
    """`path` must be a JSON file holding an object (a DeepSpeed or FSDP config); else a `UsageError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise UsageError(f"{flag} {path}: cannot read it ({reason}); expected a JSON config file") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{flag} {path}: not valid JSON ({error}); expected a JSON object") from None
    if not isinstance(config, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(config), "a number")
        raise UsageError(f"{flag} {path}: holds {kind}, expected a JSON object (the config)")


def stage_arguments(
    output_dir: Path, options: TrainOptions, *, memento: bool, evaluate: bool, bf16: bool
) -> TrainingArguments:
    """The `TrainingArguments` of one stage: `options` (paper defaults) then `options.trainer_arguments`.

    A DeepSpeed config given here is in force (ZeRO-3 partitions models loaded while this object lives).
    """
    epochs = (options.memento_epochs or options.epochs) if memento else options.epochs
    overridable = {  # memento's defaults for Trainer arguments it has no option of its own for
        "adam_beta1": 0.9,
        "adam_beta2": 0.999,
        "lr_scheduler_type": "cosine",
        "report_to": [],
        "dataloader_num_workers": 0,
        "ddp_timeout": COLLECTIVE_TIMEOUT_S,
        "use_cpu": not _cuda(),
        "gradient_checkpointing_kwargs": {"use_reentrant": False} if options.gradient_checkpointing else None,
    }
    given = {**overridable, **options.trainer_arguments}
    distributed.start_group(given["ddp_timeout"], given.get("ddp_backend"), cpu=given["use_cpu"])
    try:
        return TrainingArguments(
            output_dir=str(output_dir),
            learning_rate=options.learning_rate,
            num_train_epochs=epochs,
            per_device_train_batch_size=options.batch_size,
            per_device_eval_batch_size=options.batch_size,
            gradient_accumulation_steps=options.gradient_accumulation_steps,
            weight_decay=options.weight_decay,
            warmup_steps=options.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
            max_grad_norm=options.max_grad_norm,
            bf16=bf16,
            seed=options.seed,
            data_seed=options.seed,
            logging_steps=options.logging_steps,
            save_strategy="steps" if options.save_steps else "epoch",
            save_steps=options.save_steps or 500,  # 500: TrainingArguments' own default, unused by "epoch"
            save_total_limit=options.save_total_limit,
            eval_strategy=("steps" if options.save_steps else "epoch") if evaluate else "no",
            eval_steps=options.save_steps or None,
            load_best_model_at_end=evaluate,
            metric_for_best_model="eval_loss" if evaluate else None,
            remove_unused_columns=False,
            gradient_checkpointing=options.gradient_checkpointing,
            train_sampling_strategy="group_by_length" if options.group_by_length else "random",
            **given,
        )
    except (ValueError, TypeError, FileNotFoundError) as error:  # TrainingArguments' own validation
        raise UsageError(f"Trainer arguments {sorted(options.trainer_arguments)}: {error}") from None


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()

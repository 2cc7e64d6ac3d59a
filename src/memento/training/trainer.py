"""Two-stage SFT on the Hugging Face `Trainer`: full causal attention, then memento attention.

The additions to `Trainer` are the collator (dynamic padding, `hidden_from`) and
`MementoTrainer.compute_loss`, which turns `hidden_from` into the attention mask on the model's
device right before the forward. Across processes (torchrun, `accelerate launch`, DeepSpeed) the
rules of `memento.training.distributed` hold: one process writes, all read after a barrier.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from memento.config import MementoConfig, default_mask_delimiters
from memento.errors import UsageError
from memento.format import SpecialIds
from memento.inference.loading import load_causal_lm, load_tokenizer
from memento.training import adapters, distributed, run_folder, sparse_attention
from memento.training.arguments import stage_arguments
from memento.training.collator import MementoCollator
from memento.training.data import TrainingExample, tokenize_traces
from memento.training.masks import additive_mask, block_sparse_mask, dense_mask
from memento.training.options import STAGES, TrainOptions
from memento.training.packing import PackedExample, pack_examples
from memento.training.run_folder import DONE_MARKER
from memento.training.sources import DataSelection, read_traces
from memento.training.tokens import add_memento_tokens

logger = logging.getLogger("memento.training")

_WEIGHT_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

__all__ = ["STAGES", "ExampleDataset", "MementoTrainer", "TrainOptions", "train", "train_stage"]


class ExampleDataset(Dataset):
    """Tokenized (or packed) examples as a torch Dataset of dicts the collator reads (with their ``index``)."""

    def __init__(self, examples: list[TrainingExample] | list[PackedExample]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        example = self.examples[index]
        item: dict[str, Any] = {"input_ids": example.input_ids, "labels": example.labels, "index": index}
        if isinstance(example, PackedExample):
            item["segment_lengths"] = list(example.segment_lengths)
        return item


class MementoTrainer(Trainer):
    """`Trainer` that builds the memento mask from the collator's `hidden_from` on the model's device,
    and tells a `MementoCollator` the epoch (its plain-vs-memento draws depend on it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(self.data_collator, MementoCollator):
            self.add_callback(_CollatorEpoch(self.data_collator))

    def compute_loss(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        hidden_from = inputs.pop("hidden_from", None)
        if hidden_from is not None:  # the DDP / DeepSpeed wrapper has no `config`: ask the model itself
            inputs["attention_mask"] = memento_attention_mask(self.accelerator.unwrap_model(model), hidden_from)
        return super().compute_loss(model, inputs, *args, **kwargs)


class _CollatorEpoch(TrainerCallback):
    """Sets the collator's `epoch` at the start of each epoch (resumed mid-epoch: the epoch it is in)."""

    def __init__(self, collator: MementoCollator) -> None:
        self.collator = collator

    def on_epoch_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self.collator.epoch = math.floor((state.epoch or 0) + 1e-6)


def memento_attention_mask(model: Any, hidden_from: torch.Tensor) -> Any:
    """The mask the model's attention implementation takes: BlockMask (flex / ours), bool (sdpa) or additive (eager)."""
    implementation = getattr(model.config, "_attn_implementation", "sdpa")
    if implementation in ("flex_attention", sparse_attention.ATTENTION_NAME):
        return block_sparse_mask(hidden_from)
    if implementation == "eager":
        return additive_mask(hidden_from, model.dtype)
    return dense_mask(hidden_from)


def block_sparse_implementation() -> str:
    """flex_attention's fused kernel on CUDA; on CPU (no flex backward) our tiled PyTorch version."""
    return "flex_attention" if torch.cuda.is_available() else sparse_attention.register()


def resolve_attention(option: str) -> str:
    """'auto' is block-sparse on CUDA (flex_attention; measured faster than dense there) and dense on CPU."""
    if option == "auto":
        return "block-sparse" if torch.cuda.is_available() else "dense"
    return option


def resolve_weight_dtype(option: str) -> torch.dtype:
    """'auto' is bf16 on a bf16-capable GPU, else fp32."""
    if option == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return _WEIGHT_DTYPES[option]


def native_bf16(device: str | torch.device | None = None) -> bool:
    """Whether `device` (default: where training runs, the GPU when there is one) computes bf16 natively:
    a bf16-capable GPU, or a CPU with AVX512-BF16 or AMX."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _bf16(option: str) -> bool:
    """Whether to train under bf16 autocast. 'auto' is yes on a bf16-capable GPU only (CPU runs stay
    fp32, bit-comparable across machines); 'yes' also runs on a CPU with native bf16 (AVX512-BF16 or
    AMX), where a training step of SmolLM2-135M measured 2.2x faster than fp32 (bench/train_precision.py)."""
    on_gpu = torch.cuda.is_available()
    if option == "yes" and not native_bf16():
        cpu = "this machine has no GPU and its CPU has no native bf16 (AVX512-BF16 or AMX)"
        raise ValueError(f"bf16 requested but {'this GPU does not support bf16' if on_gpu else cpu}; use --bf16 no")
    return option == "yes" or (option == "auto" and on_gpu and native_bf16())


def _arguments(output_dir: Path, options: TrainOptions, *, memento: bool, evaluate: bool, weights: torch.dtype):
    bf16 = _bf16(options.bf16) if weights == torch.float32 else False  # low-precision weights need no autocast
    return stage_arguments(output_dir, options, memento=memento, evaluate=evaluate, bf16=bf16)


def train_stage(
    model: Any,
    tokenizer: Any,
    train_examples: list[TrainingExample],
    output_dir: Path,
    options: TrainOptions,
    *,
    memento_config: MementoConfig | None,
    eval_examples: list[TrainingExample] | None = None,
    arguments: TrainingArguments | None = None,
) -> Path:
    """Run one SFT stage and save the final (or best, with an eval set) model and tokenizer in `output_dir`.

    With `options.lora_rank` the model trains as LoRA adapters plus the memento tokens' rows; the
    adapter is saved in ``output_dir/adapter`` and the merged, ordinary model in `output_dir`.
    With `options.resume` the stage continues from the last ``checkpoint-N`` in `output_dir`.
    `arguments`: the stage's `TrainingArguments` when already built (`stage_arguments`; the model was
    loaded under its DeepSpeed config). Across processes only the saving one writes; all return
    after the files are there.
    """
    special_ids = SpecialIds.from_tokenizer(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0
    collator = MementoCollator(
        special_ids,
        memento_config,
        int(pad_id),
        full_attention_fraction=options.full_attention_fraction,
        seed=options.seed,
        packed=options.packing,
    )
    train_rows: list[Any] = list(train_examples)
    eval_rows: list[Any] = list(eval_examples or [])
    if options.packing:
        train_rows = pack_examples(train_examples, options.max_length)
        eval_rows = pack_examples(eval_rows, options.max_length) if eval_rows else []
    if options.lora_rank:
        model = adapters.add_lora(model, list(special_ids.memento_ids), options)
    weights = next(p for p in model.parameters()).dtype
    evaluate = bool(eval_rows)
    if arguments is None:
        arguments = _arguments(
            output_dir, options, memento=memento_config is not None, evaluate=evaluate, weights=weights
        )
    trainer = MementoTrainer(
        model=model,
        args=arguments,
        train_dataset=ExampleDataset(train_rows),
        eval_dataset=ExampleDataset(eval_rows) if evaluate else None,
        data_collator=collator,
        processing_class=tokenizer,
    )
    checkpoint = get_last_checkpoint(str(output_dir)) if options.resume and output_dir.is_dir() else None
    if checkpoint:
        logger.info("resuming %s from %s", output_dir, checkpoint)
    trainer.train(resume_from_checkpoint=checkpoint)
    base = model.get_base_model() if adapters.is_adapted(model) else model
    if base.config._attn_implementation == sparse_attention.ATTENTION_NAME:
        base.set_attn_implementation("sdpa")  # the checkpoint must load without our registration
    writes = distributed.writes_files(arguments)
    if adapters.is_adapted(model):
        if writes:
            adapters.save_merged(trainer.model, output_dir)
    else:
        trainer.save_model(str(output_dir))  # every process calls it (ZeRO-3 gathers); the saving one writes
    if writes:
        tokenizer.save_pretrained(str(output_dir))
        history = [entry for entry in trainer.state.log_history if "loss" in entry or "eval_loss" in entry]
        record = {
            "stage": "memento" if memento_config is not None else "full",
            "memento_config": memento_config.to_dict() if memento_config else None,
            "options": asdict(options),
            "weights_dtype": str(weights).removeprefix("torch."),
            "attention_implementation": base.config._attn_implementation,
            "processes": arguments.world_size,
            "rows": len(train_rows),
            "examples": len(train_examples),
            "eval_examples": len(eval_examples or []),
            "resumed_from": checkpoint,
            "log_history": history,
        }
        (output_dir / DONE_MARKER).write_text(json.dumps(record, indent=2))
    distributed.barrier()  # the next stage (or the caller) reads these files on every process
    return output_dir


def hold_out(examples: list[TrainingExample], fraction: float, seed: int) -> tuple[list, list]:
    """(train, eval): a seeded random `fraction` of the examples (at least one) held out for evaluation."""
    if len(examples) < 2:
        raise ValueError(f"eval_fraction needs at least 2 examples, got {len(examples)}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    count = min(len(examples) - 1, max(1, round(fraction * len(examples))))
    held = set(order[:count])
    return [e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held]


def train(
    model_path: str | Path,
    data: list[str | Path],
    output_dir: str | Path,
    *,
    stage: str = "both",
    options: TrainOptions | None = None,
    eval_data: list[str | Path] | None = None,
    attn_implementation: str | None = None,
    selection: DataSelection | None = None,
) -> Path:
    """Load a local checkpoint (directory or .gguf), add the memento tokens, and run stage 1, stage 2, or both.

    `both` saves stage 1 in ``OUTPUT/stage1-full`` and trains stage 2 from it into
    ``OUTPUT/stage2-memento``; the final model (with its tokenizer) is also copied to ``OUTPUT``.
    `data` mixes trace files and OpenMementos sources (see `memento.training.sources`), chosen
    by `selection`. Returns the directory of the final model.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    options = options or TrainOptions()
    output_dir = Path(output_dir)
    run_folder.check_output_folder(output_dir, stage, resume=options.resume, overwrite=options.overwrite)
    weights = resolve_weight_dtype(options.dtype)
    attention = resolve_attention(options.attention)
    plain = attn_implementation or "sdpa"
    traces = read_traces(data, selection)  # bad data is refused before the model's weights load
    eval_traces = read_traces(eval_data) if eval_data else None
    if eval_data and not eval_traces:
        raise UsageError(f"--eval-data {' '.join(map(str, eval_data))}: no records in it (expected at least one trace)")
    # the first stage's arguments come first: they set up the process group and put a DeepSpeed
    # config in force, so that ZeRO-3 partitions the model as it loads (`zero.Init`)
    first_dir = run_folder.stage_folders(output_dir, stage)[0]
    evaluate = bool(eval_data or options.eval_fraction)
    first = _arguments(first_dir, options, memento=stage == "memento", evaluate=evaluate, weights=weights)
    distributed.check_sharding(first)
    distributed.check_zero3_saves_weights(first)
    distributed.start(first)
    if options.overwrite:
        if distributed.writes_files(first):
            for path in run_folder.clear(output_dir, stage):
                logger.info("--overwrite: deleted %s", path)
        distributed.barrier()
    if options.lora_rank and distributed.zero3_enabled():
        raise UsageError("--lora-rank: LoRA under DeepSpeed ZeRO-3 is not supported; use ZeRO-2 or full training")
    tokenizer = load_tokenizer(model_path)
    model = load_causal_lm(model_path, dtype=weights, attn_implementation=plain)
    add_memento_tokens(model, tokenizer, seed=options.seed)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    length = {"max_length": options.max_length, "overflow": options.overflow, "system": options.system_prompt}
    train_examples, stats = tokenize_traces(traces, tokenizer, origin=str([str(p) for p in data]), **length)
    eval_origin = f"--eval-data {[str(p) for p in eval_data or ()]}"
    eval_examples = (
        tokenize_traces(eval_traces, tokenizer, origin=eval_origin, **length)[0] if eval_traces is not None else None
    )
    if eval_examples is None and options.eval_fraction:
        train_examples, eval_examples = hold_out(train_examples, options.eval_fraction, options.seed)
    logger.info(
        "training on %d examples (%d truncated, %d dropped), evaluating on %d",
        len(train_examples),
        stats.truncated,
        len(stats.dropped),
        len(eval_examples or []),
    )
    mask_delimiters = options.mask_delimiters
    if mask_delimiters is None:
        mask_delimiters = default_mask_delimiters(model.config.model_type)
    memento_config = MementoConfig(keep_last_n_blocks=options.keep_last_n_blocks, mask_delimiters=mask_delimiters)
    stage_options = {"options": options, "eval_examples": eval_examples}

    def implementation(needs_mask: bool) -> str:
        return block_sparse_implementation() if needs_mask and attention == "block-sparse" else plain

    final = output_dir
    if stage in ("full", "both"):
        if options.resume and (first_dir / DONE_MARKER).is_file():
            logger.info("stage 1 already finished in %s", first_dir)
        else:
            model.set_attn_implementation(implementation(options.packing))
            train_stage(
                model, tokenizer, train_examples, first_dir, memento_config=None, arguments=first, **stage_options
            )
        final = first_dir
    if stage in ("memento", "both"):
        stage_dir = run_folder.stage_folders(output_dir, stage)[-1]
        arguments = first
        if stage == "both":  # stage 2 starts from stage 1's final (or best) weights, as saved
            del model, first  # (ZeRO-3: the new arguments' config partitions the model loaded next)
            arguments = _arguments(stage_dir, options, memento=True, evaluate=evaluate, weights=weights)
            model = load_causal_lm(final, dtype=weights, attn_implementation=plain)
        model.set_attn_implementation(implementation(True))
        final = train_stage(
            model,
            tokenizer,
            train_examples,
            stage_dir,
            memento_config=memento_config,
            arguments=arguments,
            **stage_options,
        )
    if stage == "both":
        if distributed.writes_files(arguments):
            for item in final.iterdir():
                if item.is_file():
                    shutil.copy2(item, output_dir / item.name)
        distributed.barrier()
        final = output_dir
    return final

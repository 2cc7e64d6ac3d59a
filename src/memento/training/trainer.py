"""Two-stage SFT on the Hugging Face `Trainer`: full causal attention, then memento attention.

`accelerate launch` / DeepSpeed / FSDP scale it unchanged: the only additions to `Trainer` are
the collator (dynamic padding, `hidden_from`) and `MementoTrainer.compute_loss`, which turns
`hidden_from` into the attention mask on the model's device right before the forward.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from memento.config import MementoConfig, default_mask_delimiters
from memento.format import SpecialIds
from memento.inference.loading import load_causal_lm, load_tokenizer
from memento.training import adapters, sparse_attention
from memento.training.collator import MementoCollator
from memento.training.data import TrainingExample, tokenize_traces
from memento.training.masks import additive_mask, block_sparse_mask, dense_mask
from memento.training.options import TrainOptions
from memento.training.packing import PackedExample, pack_examples
from memento.training.sources import DataSelection, read_traces
from memento.training.tokens import add_memento_tokens

logger = logging.getLogger("memento.training")

STAGES = ("full", "memento", "both")
DONE_MARKER = "memento_training.json"
_WEIGHT_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

__all__ = ["STAGES", "ExampleDataset", "MementoTrainer", "TrainOptions", "train", "train_stage"]


class ExampleDataset(Dataset):
    """Tokenized (or packed) examples as a torch Dataset of dicts the collator reads."""

    def __init__(self, examples: list[TrainingExample] | list[PackedExample]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        example = self.examples[index]
        item: dict[str, Any] = {"input_ids": example.input_ids, "labels": example.labels}
        if isinstance(example, PackedExample):
            item["segment_lengths"] = list(example.segment_lengths)
        return item


class MementoTrainer(Trainer):
    """`Trainer` that builds the memento mask from the collator's `hidden_from` on the model's device."""

    def compute_loss(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        hidden_from = inputs.pop("hidden_from", None)
        if hidden_from is not None:
            inputs["attention_mask"] = memento_attention_mask(model, hidden_from)
        return super().compute_loss(model, inputs, *args, **kwargs)


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
    epochs = (options.memento_epochs or options.epochs) if memento else options.epochs
    save = {"save_strategy": "steps", "save_steps": options.save_steps} if options.save_steps else {}
    return TrainingArguments(
        output_dir=str(output_dir),
        learning_rate=options.learning_rate,
        num_train_epochs=epochs,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size,
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        adam_beta1=0.9,
        adam_beta2=0.999,
        weight_decay=options.weight_decay,
        lr_scheduler_type="cosine",
        warmup_steps=options.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        max_grad_norm=options.max_grad_norm,
        bf16=_bf16(options.bf16) if weights == torch.float32 else False,  # low-precision weights need no autocast
        seed=options.seed,
        data_seed=options.seed,
        logging_steps=options.logging_steps,
        save_strategy="epoch",
        save_total_limit=options.save_total_limit,
        eval_strategy=("steps" if options.save_steps else "epoch") if evaluate else "no",
        eval_steps=options.save_steps or None,
        load_best_model_at_end=evaluate,
        metric_for_best_model="eval_loss" if evaluate else None,
        remove_unused_columns=False,
        report_to=[],
        gradient_checkpointing=options.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if options.gradient_checkpointing else None,
        train_sampling_strategy="group_by_length" if options.group_by_length else "random",
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        **save,
    )


def train_stage(
    model: Any,
    tokenizer: Any,
    train_examples: list[TrainingExample],
    output_dir: Path,
    options: TrainOptions,
    *,
    memento_config: MementoConfig | None,
    eval_examples: list[TrainingExample] | None = None,
) -> Path:
    """Run one SFT stage and save the final (or best, with an eval set) model and tokenizer in `output_dir`.

    With `options.lora_rank` the model trains as LoRA adapters plus the memento tokens' rows; the
    adapter is saved in ``output_dir/adapter`` and the merged, ordinary model in `output_dir`.
    With `options.resume` the stage continues from the last ``checkpoint-N`` in `output_dir`.
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
    trainer = MementoTrainer(
        model=model,
        args=_arguments(output_dir, options, memento=memento_config is not None, evaluate=evaluate, weights=weights),
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
    if adapters.is_adapted(model):
        adapters.save_merged(trainer.model, output_dir)
    else:
        trainer.save_model(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    history = [entry for entry in trainer.state.log_history if "loss" in entry or "eval_loss" in entry]
    (output_dir / DONE_MARKER).write_text(
        json.dumps(
            {
                "stage": "memento" if memento_config is not None else "full",
                "memento_config": memento_config.to_dict() if memento_config else None,
                "options": asdict(options),
                "weights_dtype": str(weights).removeprefix("torch."),
                "attention_implementation": base.config._attn_implementation,
                "rows": len(train_rows),
                "examples": len(train_examples),
                "eval_examples": len(eval_examples or []),
                "resumed_from": checkpoint,
                "log_history": history,
            },
            indent=2,
        )
    )
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
    weights = resolve_weight_dtype(options.dtype)
    attention = resolve_attention(options.attention)
    plain = attn_implementation or "sdpa"
    traces = read_traces(data, selection)  # bad data is refused before the model's weights load
    eval_traces = read_traces(eval_data) if eval_data else None
    tokenizer = load_tokenizer(model_path)
    model = load_causal_lm(model_path, dtype=weights, attn_implementation=plain)
    add_memento_tokens(model, tokenizer, seed=options.seed)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    length = {"max_length": options.max_length, "overflow": options.overflow, "system": options.system_prompt}
    train_examples, stats = tokenize_traces(traces, tokenizer, origin=str([str(p) for p in data]), **length)
    eval_examples = tokenize_traces(eval_traces, tokenizer, **length)[0] if eval_traces is not None else None
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

    def implementation(needs_mask: bool) -> str:
        return block_sparse_implementation() if needs_mask and attention == "block-sparse" else plain

    final = output_dir
    if stage in ("full", "both"):
        stage_dir = output_dir / "stage1-full" if stage == "both" else output_dir
        if options.resume and (stage_dir / DONE_MARKER).is_file():
            logger.info("stage 1 already finished in %s", stage_dir)
        else:
            model.set_attn_implementation(implementation(options.packing))
            train_stage(
                model, tokenizer, train_examples, stage_dir, options, memento_config=None, eval_examples=eval_examples
            )
        final = stage_dir
    if stage in ("memento", "both"):
        stage_dir = output_dir / "stage2-memento" if stage == "both" else output_dir
        if stage == "both":  # stage 2 starts from stage 1's final (or best) weights, as saved
            model = load_causal_lm(final, dtype=weights, attn_implementation=plain)
        model.set_attn_implementation(implementation(True))
        final = train_stage(
            model,
            tokenizer,
            train_examples,
            stage_dir,
            options,
            memento_config=memento_config,
            eval_examples=eval_examples,
        )
    if stage == "both":
        for item in final.iterdir():
            if item.is_file():
                shutil.copy2(item, output_dir / item.name)
        final = output_dir
    return final

"""Two-stage SFT on the Hugging Face `Trainer`: full causal attention, then memento attention.

`accelerate launch` / DeepSpeed / FSDP scale it unchanged: the only additions to `Trainer` are
the collator (dynamic padding, `hidden_from`) and `MementoTrainer.compute_loss`, which turns
`hidden_from` into the attention mask on the model's device right before the forward.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

from memento.config import MementoConfig, default_mask_delimiters
from memento.format import SpecialIds
from memento.training import sparse_attention
from memento.training.collator import MementoCollator
from memento.training.data import TrainingExample, load_examples
from memento.training.masks import additive_mask, block_sparse_mask, dense_mask
from memento.training.tokens import add_memento_tokens

logger = logging.getLogger("memento.training")

STAGES = ("full", "memento", "both")


@dataclass
class TrainOptions:
    """Hyperparameters; defaults are the paper's (AdamW (0.9, 0.999), no weight decay, lr 8e-5,
    cosine with 5% warm-up, 5 epochs per stage, grad clip 1.0, bf16 where supported, 32K tokens).

    `memento_epochs`: stage 2's epochs when they differ from stage 1's (None = `epochs`).
    `full_attention_fraction`: share of stage-2 examples trained with plain causal attention, which
    keeps the model accurate without eviction too (0 = the paper: all under the memento mask).
    `attention`: "dense" (an L x L mask, sdpa or eager) or "block-sparse" (flex_attention
    BlockMask built from the block structure). `mask_delimiters` None = per model family.
    """

    learning_rate: float = field(default=8e-5, metadata={"help": "peak learning rate (cosine schedule)"})
    epochs: float = field(default=5.0, metadata={"help": "epochs per stage"})
    memento_epochs: float | None = field(default=None, metadata={"help": "stage 2 epochs (default: --epochs)"})
    full_attention_fraction: float = field(
        default=0.0,
        metadata={
            "help": "share of stage-2 examples trained with plain causal attention "
            "(keeps the model usable without eviction)"
        },
    )
    batch_size: int = field(default=1, metadata={"help": "examples per device per step"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "steps per optimizer update"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of steps with a linear warm-up"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    max_length: int = field(default=32768, metadata={"help": "tokens per conversation at most"})
    overflow: Literal["truncate", "drop"] = field(
        default="truncate", metadata={"help": "a longer conversation is cut after its last memento, or dropped"}
    )
    bf16: Literal["auto", "yes", "no"] = field(default="auto", metadata={"help": "bf16 mixed precision"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    attention: Literal["dense", "block-sparse"] = field(
        default="dense", metadata={"help": "dense L x L mask (sdpa) or flex_attention block-sparse mask"}
    )
    mask_delimiters: bool | None = field(
        default=None, metadata={"help": "stage 2 masks the block delimiters too (default: per model family)"}
    )
    keep_last_n_blocks: int = field(
        default=0, metadata={"flag": "--keep-last-n", "help": "stage 2: completed blocks kept visible"}
    )
    logging_steps: int = field(default=10, metadata={"help": "log the loss every N steps"})
    save_total_limit: int | None = field(default=2, metadata={"help": "checkpoints kept per stage"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations to save memory"})

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        if self.memento_epochs is not None and self.memento_epochs <= 0:
            raise ValueError(f"memento_epochs must be positive, got {self.memento_epochs}")
        if not 0 <= self.full_attention_fraction <= 1:
            raise ValueError(f"full_attention_fraction must be in [0, 1], got {self.full_attention_fraction}")
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("batch_size and gradient_accumulation_steps must be >= 1")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.max_length < 16:
            raise ValueError(f"max_length must be >= 16, got {self.max_length}")
        if self.attention not in ("dense", "block-sparse"):
            raise ValueError(f"attention must be 'dense' or 'block-sparse', got {self.attention!r}")
        if self.bf16 not in ("auto", "yes", "no"):
            raise ValueError(f"bf16 must be auto, yes or no, got {self.bf16!r}")
        if self.keep_last_n_blocks < 0:
            raise ValueError("stage 2 trains an evicting model: keep_last_n_blocks must be >= 0")


class ExampleDataset(Dataset):
    """A list of tokenized examples as a torch Dataset."""

    def __init__(self, examples: list[TrainingExample]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        example = self.examples[index]
        return {"input_ids": example.input_ids, "labels": example.labels}


class MementoTrainer(Trainer):
    """`Trainer` that builds the memento mask from the collator's `hidden_from` on the model's device."""

    def __init__(self, *args: Any, attention: str = "dense", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attention = attention

    def compute_loss(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        hidden_from = inputs.pop("hidden_from", None)
        if hidden_from is not None:
            inputs["attention_mask"] = memento_attention_mask(model, hidden_from, self.attention)
        return super().compute_loss(model, inputs, *args, **kwargs)


def memento_attention_mask(model: Any, hidden_from: torch.Tensor, attention: str) -> Any:
    """The mask the model's attention implementation takes: BlockMask (flex / ours), bool (sdpa) or additive (eager)."""
    implementation = getattr(model.config, "_attn_implementation", "sdpa")
    if attention == "block-sparse" or implementation in ("flex_attention", sparse_attention.ATTENTION_NAME):
        return block_sparse_mask(hidden_from)
    if implementation == "eager":
        return additive_mask(hidden_from, model.dtype)
    return dense_mask(hidden_from)


def block_sparse_implementation() -> str:
    """flex_attention's fused kernel on CUDA; on CPU (no flex backward) our tiled PyTorch version."""
    return "flex_attention" if torch.cuda.is_available() else sparse_attention.register()


def _bf16(option: str) -> bool:
    supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if option == "yes" and not supported:
        raise ValueError("bf16 requested but this machine has no bf16-capable GPU")
    return supported if option == "auto" else option == "yes"


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
    """Run one SFT stage and save the final (or best, with an eval set) model and tokenizer in `output_dir`."""
    special_ids = SpecialIds.from_tokenizer(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0
    collator = MementoCollator(
        special_ids,
        memento_config,
        int(pad_id),
        full_attention_fraction=options.full_attention_fraction,
        seed=options.seed,
    )
    evaluate = bool(eval_examples)
    arguments = TrainingArguments(
        output_dir=str(output_dir),
        learning_rate=options.learning_rate,
        num_train_epochs=options.epochs if memento_config is None else options.memento_epochs or options.epochs,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size,
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        adam_beta1=0.9,
        adam_beta2=0.999,
        weight_decay=options.weight_decay,
        lr_scheduler_type="cosine",
        warmup_steps=options.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        max_grad_norm=options.max_grad_norm,
        bf16=_bf16(options.bf16),
        seed=options.seed,
        data_seed=options.seed,
        logging_steps=options.logging_steps,
        save_strategy="epoch",
        save_total_limit=options.save_total_limit,
        eval_strategy="epoch" if evaluate else "no",
        load_best_model_at_end=evaluate,
        metric_for_best_model="eval_loss" if evaluate else None,
        remove_unused_columns=False,
        report_to=[],
        gradient_checkpointing=options.gradient_checkpointing,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = MementoTrainer(
        model=model,
        args=arguments,
        train_dataset=ExampleDataset(train_examples),
        eval_dataset=ExampleDataset(eval_examples) if evaluate else None,
        data_collator=collator,
        processing_class=tokenizer,
        attention=options.attention,
    )
    trainer.train()
    if model.config._attn_implementation == sparse_attention.ATTENTION_NAME:
        model.set_attn_implementation("sdpa")  # the checkpoint must load without our registration
    trainer.save_model(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    history = [entry for entry in trainer.state.log_history if "loss" in entry or "eval_loss" in entry]
    (output_dir / "memento_training.json").write_text(
        json.dumps(
            {
                "stage": "memento" if memento_config is not None else "full",
                "memento_config": memento_config.to_dict() if memento_config else None,
                "options": asdict(options),
                "log_history": history,
            },
            indent=2,
        )
    )
    return output_dir


def train(
    model_path: str | Path,
    data: list[str | Path],
    output_dir: str | Path,
    *,
    stage: str = "both",
    options: TrainOptions | None = None,
    eval_data: list[str | Path] | None = None,
    attn_implementation: str | None = None,
) -> Path:
    """Load a local checkpoint, add the memento tokens, and run stage 1, stage 2, or both in turn.

    `both` saves stage 1 in ``OUTPUT/stage1-full`` and trains stage 2 from it into
    ``OUTPUT/stage2-memento``; the final model (with its tokenizer) is also copied to ``OUTPUT``.
    Returns the directory of the final model.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    options = options or TrainOptions()
    output_dir = Path(output_dir)
    implementation = attn_implementation or "sdpa"  # stage 1 is plain causal; stage 2 may switch to block-sparse
    tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        str(model_path), local_files_only=True, attn_implementation=implementation, dtype=torch.float32
    )
    add_memento_tokens(model, tokenizer, seed=options.seed)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_examples, stats = load_examples(data, tokenizer, max_length=options.max_length, overflow=options.overflow)
    eval_examples = (
        load_examples(eval_data, tokenizer, max_length=options.max_length, overflow=options.overflow)[0]
        if eval_data
        else None
    )
    logger.info(
        "training on %d examples (%d truncated, %d dropped)", stats.examples, stats.truncated, len(stats.dropped)
    )
    mask_delimiters = options.mask_delimiters
    if mask_delimiters is None:
        mask_delimiters = default_mask_delimiters(model.config.model_type)
    memento_config = MementoConfig(keep_last_n_blocks=options.keep_last_n_blocks, mask_delimiters=mask_delimiters)

    final = output_dir
    if stage in ("full", "both"):
        stage_dir = output_dir / "stage1-full" if stage == "both" else output_dir
        final = train_stage(
            model, tokenizer, train_examples, stage_dir, options, memento_config=None, eval_examples=eval_examples
        )
    if stage in ("memento", "both"):
        stage_dir = output_dir / "stage2-memento" if stage == "both" else output_dir
        if stage == "both":  # stage 2 starts from stage 1's final (or best) weights, as saved
            model = AutoModelForCausalLM.from_pretrained(
                str(final), local_files_only=True, attn_implementation=implementation, dtype=torch.float32
            )
        if options.attention == "block-sparse":
            model.set_attn_implementation(block_sparse_implementation())
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

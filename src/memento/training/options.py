"""`TrainOptions`: every knob of `memento train`, validated; the CLI is generated from the fields' help."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Literal

Attention = Literal["auto", "dense", "block-sparse"]
WeightDtype = Literal["auto", "fp32", "bf16", "fp16"]
ATTENTION_CHOICES = typing.get_args(Attention)
DTYPE_CHOICES = typing.get_args(WeightDtype)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


STAGES = ("full", "memento", "both")
"""`memento train --stage`: stage 1 (full causal attention), stage 2 (memento attention), or both in turn."""


@dataclass
class TrainOptions:
    """Hyperparameters; defaults are the paper's (AdamW (0.9, 0.999), no weight decay, lr 8e-5,
    cosine with 5% warm-up, 5 epochs per stage, grad clip 1.0, bf16 where supported, 32K tokens).

    `memento_epochs`: stage 2's epochs when they differ from stage 1's (None = `epochs`).
    `full_attention_fraction`: share of stage-2 examples trained with plain causal attention, which
    keeps the model accurate without eviction too (0 = the paper: all under the memento mask).
    `attention`: "dense" (an L x L mask, sdpa or eager), "block-sparse" (flex_attention
    BlockMask built from the block structure) or "auto" (block-sparse on CUDA, dense on CPU).
    `mask_delimiters` None = per model family.
    `trainer_arguments`: any other `transformers.TrainingArguments` field by name (``deepspeed``,
    ``fsdp``, ``ddp_find_unused_parameters``, ...; see `memento.training.arguments`), no CLI flag of its own.
    """

    learning_rate: float = field(default=8e-5, metadata=_help("peak learning rate (cosine schedule)"))
    epochs: float = field(default=5.0, metadata=_help("epochs of stage 1 (and of stage 2 unless --memento-epochs)"))
    memento_epochs: float | None = field(default=None, metadata=_help("stage 2 epochs (default: epochs)"))
    full_attention_fraction: float = field(
        default=0.0,
        metadata=_help("share of stage-2 examples trained with plain causal attention (keeps no-eviction use good)"),
    )
    batch_size: int = field(default=1, metadata=_help("rows per device per step"))
    gradient_accumulation_steps: int = field(default=1, metadata=_help("steps accumulated per optimizer update"))
    warmup_ratio: float = field(default=0.05, metadata=_help("share of the steps spent warming up"))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay"))
    max_grad_norm: float = field(default=1.0, metadata=_help("gradient clipping norm"))
    max_length: int = field(default=32768, metadata=_help("tokens per conversation (and per packed row)"))
    overflow: Literal["truncate", "drop"] = field(
        default="truncate", metadata=_help("longer conversations: truncate after the last whole memento, or drop")
    )
    bf16: Literal["auto", "yes", "no"] = field(
        default="auto",
        metadata=_help(
            "bf16 autocast over fp32 weights: auto (on a bf16 GPU), yes (a bf16 GPU, or a CPU with native bf16), no"
        ),
    )
    dtype: WeightDtype = field(
        default="auto",
        metadata=_help(
            "dtype the weights are loaded and trained in: auto (bf16 on a bf16 GPU, else fp32), fp32, bf16, "
            "fp16 (adapters only)"
        ),
    )
    system_prompt: str | None = field(
        default=None,
        metadata=_help(
            "system turn put before every training conversation; give the one your chat template adds at "
            "inference (e.g. SmolLM2's default), so that training sees the prompts generation will"
        ),
    )
    seed: int = field(default=0, metadata=_help("seed of initialisation, shuffling and held-out split"))
    attention: Attention = field(
        default="auto",
        metadata=_help("memento mask: dense (L x L), block-sparse (flex_attention tiles), auto (block-sparse on CUDA)"),
    )
    mask_delimiters: bool | None = field(
        default=None, metadata=_help("stage 2 masks the block delimiters too (default: per model family)")
    )
    keep_last_n_blocks: int = field(
        default=0, metadata={"flag": "--keep-last-n", "help": "stage 2: completed blocks kept visible"}
    )
    logging_steps: int = field(default=10, metadata=_help("log the loss every N steps"))
    save_total_limit: int | None = field(default=2, metadata=_help("checkpoints kept per stage"))
    save_steps: int = field(default=0, metadata=_help("save a checkpoint every N steps (0: at the end of each epoch)"))
    gradient_checkpointing: bool = field(
        default=False, metadata=_help("recompute activations in the backward pass (less memory, more compute)")
    )
    lora_rank: int = field(default=0, metadata=_help("LoRA adapter rank (0: full fine-tuning)"))
    lora_alpha: float | None = field(default=None, metadata=_help("LoRA scaling alpha (default: 2 x rank)"))
    lora_dropout: float = field(default=0.0, metadata=_help("dropout on the LoRA path"))
    lora_target_modules: str = field(
        default="all-linear", metadata=_help("modules that get adapters: all-linear or comma-separated names")
    )
    packing: bool = field(
        default=False,
        metadata=_help("pack several conversations into each row (block-diagonal masks, positions restart)"),
    )
    group_by_length: bool = field(default=False, metadata=_help("batch conversations of similar length together"))
    eval_fraction: float = field(
        default=0.0, metadata=_help("hold out this share of the data for an eval loss per epoch (without eval data)")
    )
    resume: bool = field(
        default=False,
        metadata=_help(
            "continue an interrupted run: finished stages are kept, the running one resumes from its last checkpoint"
        ),
    )
    overwrite: bool = field(
        default=False,
        metadata=_help("start over in an output folder an interrupted run left: its checkpoints are deleted first"),
    )
    trainer_arguments: dict[str, Any] = field(default_factory=dict, metadata={"cli": False})

    def __post_init__(self) -> None:
        from memento.training.arguments import check_trainer_arguments  # imports transformers

        check_trainer_arguments(self.trainer_arguments)
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
        if self.overflow not in ("truncate", "drop"):
            raise ValueError(f"overflow must be 'truncate' or 'drop', got {self.overflow!r}")
        if self.attention not in ATTENTION_CHOICES:
            raise ValueError(f"attention must be one of {ATTENTION_CHOICES}, got {self.attention!r}")
        if self.bf16 not in ("auto", "yes", "no"):
            raise ValueError(f"bf16 must be auto, yes or no, got {self.bf16!r}")
        if self.dtype not in DTYPE_CHOICES:
            raise ValueError(f"dtype must be one of {DTYPE_CHOICES}, got {self.dtype!r}")
        if self.dtype == "fp16" and not self.lora_rank:
            raise ValueError(
                "fp16 weights train only with adapters (lora_rank > 0); use bf16 or fp32 for full training"
            )
        if self.keep_last_n_blocks < 0:
            raise ValueError("stage 2 trains an evicting model: keep_last_n_blocks must be >= 0")
        if self.lora_rank < 0 or (self.lora_alpha is not None and self.lora_alpha <= 0):
            raise ValueError("lora_rank must be >= 0 and lora_alpha positive")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.save_steps < 0:
            raise ValueError(f"save_steps must be >= 0, got {self.save_steps}")
        if self.resume and self.overwrite:
            raise ValueError("choose resume (continue the run in the output folder) or overwrite (start over)")
        if self.packing and self.group_by_length:
            raise ValueError("choose packing or group_by_length, not both")

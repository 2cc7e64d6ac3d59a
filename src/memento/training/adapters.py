"""LoRA adapters through PEFT, with the memento tokens' embedding (and LM-head) rows trained too.

New special tokens start as averaged word embeddings; with adapters alone their rows would stay
frozen, so PEFT's `trainable_token_indices` makes exactly those rows trainable: in the input
embedding, and in the LM head when it is not tied to it (a tied head follows the embedding).
After training, `merge_and_unload` folds adapters and rows into an ordinary checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from memento.training.options import TrainOptions


def _module_name(model: Any, module: Any) -> str:
    """The last component of `module`'s dotted name in `model` (what PEFT matches on)."""
    return next(name for name, candidate in model.named_modules() if candidate is module).rsplit(".", 1)[-1]


def add_lora(model: Any, token_ids: list[int], options: TrainOptions) -> Any:
    """Wrap `model` in a `PeftModel` with LoRA on `options.lora_target_modules` and trainable rows `token_ids`;
    the adapters' initialisation is seeded by `options.seed`."""
    from peft import LoraConfig, get_peft_model

    embeddings = {_module_name(model, model.get_input_embeddings()): list(token_ids)}
    head = model.get_output_embeddings()
    if head is not None and head.weight is not model.get_input_embeddings().weight:
        embeddings[_module_name(model, head)] = list(token_ids)
    targets: str | list[str] = options.lora_target_modules
    if targets != "all-linear":
        targets = [name.strip() for name in targets.split(",") if name.strip()]
    config = LoraConfig(
        r=options.lora_rank,
        lora_alpha=options.lora_alpha if options.lora_alpha is not None else 2 * options.lora_rank,
        lora_dropout=options.lora_dropout,
        target_modules=targets,
        trainable_token_indices=embeddings,
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng():  # the adapters' random init follows options.seed (same on every process)
        torch.manual_seed(options.seed)
        return get_peft_model(model, config)


def is_adapted(model: Any) -> bool:
    """True for a PEFT-wrapped model."""
    return hasattr(model, "merge_and_unload") and hasattr(model, "peft_config")


def save_merged(model: Any, output_dir: Path) -> Any:
    """Save the adapter in ``output_dir/adapter`` and the merged ordinary model in `output_dir`; return the latter."""
    model.save_pretrained(str(output_dir / "adapter"))
    merged = model.merge_and_unload()
    merged.save_pretrained(str(output_dir))
    return merged

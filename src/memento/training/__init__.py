"""Teach a Hugging Face causal LM the memento format: tokens, masks, two-stage SFT."""

from __future__ import annotations

from typing import TYPE_CHECKING

from memento.lazy import lazy_exports

_EXPORTS = {
    "MementoCollator": "collator",
    "TrainingExample": "data",
    "load_examples": "data",
    "tokenize_trace": "data",
    "TrainOptions": "options",
    "PackedExample": "packing",
    "pack_examples": "packing",
    "DataSelection": "sources",
    "read_traces": "sources",
    "SEED_WORDS": "tokens",
    "add_memento_tokens": "tokens",
    "MementoTrainer": "trainer",
    "train": "trainer",
    "train_stage": "trainer",
}
"""Public name -> the submodule defining it, loaded on first use (so importing this package stays light)."""

__all__ = [
    "SEED_WORDS",
    "DataSelection",
    "MementoCollator",
    "MementoTrainer",
    "PackedExample",
    "TrainOptions",
    "TrainingExample",
    "add_memento_tokens",
    "load_examples",
    "pack_examples",
    "read_traces",
    "tokenize_trace",
    "train",
    "train_stage",
]

if TYPE_CHECKING:
    from memento.training.collator import MementoCollator
    from memento.training.data import TrainingExample, load_examples, tokenize_trace
    from memento.training.options import TrainOptions
    from memento.training.packing import PackedExample, pack_examples
    from memento.training.sources import DataSelection, read_traces
    from memento.training.tokens import SEED_WORDS, add_memento_tokens
    from memento.training.trainer import MementoTrainer, train, train_stage


__getattr__ = lazy_exports(__name__, _EXPORTS)

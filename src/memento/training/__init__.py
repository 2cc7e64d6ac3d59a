"""Teach a Hugging Face causal LM the memento format: tokens, masks, two-stage SFT."""

from memento.training.collator import MementoCollator
from memento.training.data import TrainingExample, load_examples, tokenize_trace
from memento.training.options import TrainOptions
from memento.training.packing import PackedExample, pack_examples
from memento.training.sources import DataSelection, read_traces
from memento.training.tokens import SEED_WORDS, add_memento_tokens
from memento.training.trainer import MementoTrainer, train, train_stage

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

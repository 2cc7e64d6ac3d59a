"""Teach a Hugging Face causal LM the memento format: tokens, masks, two-stage SFT."""

from memento.training.collator import MementoCollator
from memento.training.data import TrainingExample, load_examples, tokenize_trace
from memento.training.tokens import SEED_WORDS, add_memento_tokens
from memento.training.trainer import MementoTrainer, TrainOptions, train, train_stage

__all__ = [
    "SEED_WORDS",
    "MementoCollator",
    "MementoTrainer",
    "TrainOptions",
    "TrainingExample",
    "add_memento_tokens",
    "load_examples",
    "tokenize_trace",
    "train",
    "train_stage",
]

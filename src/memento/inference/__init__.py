"""Inference with physical KV eviction for any Hugging Face causal LM."""

from memento.inference.cache import EvictingKVCache
from memento.inference.generator import Eviction, GenerationResult, MementoGenerator, StreamEvent
from memento.inference.logits import MaxBlockTokensProcessor

__all__ = [
    "EvictingKVCache",
    "Eviction",
    "GenerationResult",
    "MaxBlockTokensProcessor",
    "MementoGenerator",
    "StreamEvent",
]

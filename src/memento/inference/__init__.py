"""Inference with physical KV eviction for any Hugging Face causal LM."""

from __future__ import annotations

from typing import TYPE_CHECKING

from memento.lazy import lazy_exports

_EXPORTS = {
    "EvictingKVCache": "cache",
    "Eviction": "generator",
    "GenerationResult": "generator",
    "MementoGenerator": "generator",
    "StreamEvent": "generator",
    "MaxBlockTokensProcessor": "logits",
}
"""Public name -> the submodule defining it, loaded on first use (so importing this package stays light)."""

__all__ = [
    "EvictingKVCache",
    "Eviction",
    "GenerationResult",
    "MaxBlockTokensProcessor",
    "MementoGenerator",
    "StreamEvent",
]

if TYPE_CHECKING:
    from memento.inference.cache import EvictingKVCache
    from memento.inference.generator import Eviction, GenerationResult, MementoGenerator, StreamEvent
    from memento.inference.logits import MaxBlockTokensProcessor


__getattr__ = lazy_exports(__name__, _EXPORTS)

"""Inference with physical KV eviction for any Hugging Face causal LM."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'memento.inference' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"memento.inference.{module}"), name)
    globals()[name] = value
    return value

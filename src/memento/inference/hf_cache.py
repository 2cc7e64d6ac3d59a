"""The only code that touches transformers' Cache internals (they change between releases).

Verified against transformers 5.16-5.23: `DynamicCache()` without a config lazily creates one
`DynamicLayer` per decoder layer; each holds `.keys` / `.values` shaped [B, kv_heads, S, head_dim]
and `get_seq_length()` reads `keys.shape[-2]`, so replacing the tensors is all a compaction needs.
Built without a config on purpose: sliding-window layers would crop themselves by *physical*
length, while memento keeps logical positions and applies windows in the attention mask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from transformers import DynamicCache


def new_cache() -> DynamicCache:
    """An empty cache of full (non-cropping) layers."""
    return DynamicCache()


def layer_tensors(cache: DynamicCache) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) of every initialised layer, each [B, kv_heads, S, head_dim]."""
    for layer in cache.layers:
        if getattr(layer, "keys", None) is not None and layer.keys.numel():
            yield layer.keys, layer.values


def map_layers(cache: DynamicCache, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Replace every layer's keys and values by `transform(tensor)` (e.g. a gather over slots or rows)."""
    for layer in cache.layers:
        if getattr(layer, "keys", None) is not None and layer.keys.numel():
            layer.keys = transform(layer.keys)
            layer.values = transform(layer.values)

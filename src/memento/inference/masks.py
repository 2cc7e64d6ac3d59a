"""4-D additive attention masks for one forward over a chunk of new tokens and the physical cache.

The rule itself lives in `memento.attention`: the tracker says which spans are evicted after
which token. This module only turns slots, logical positions and those events into the tensor
transformers' attention takes, shape [B, 1, q, S + q] (0 = attend, dtype min = blocked).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from memento.attention import EvictedSpan

# (index in the chunk of the token after which the span goes, the span)
ChunkEviction = tuple[int, EvictedSpan]


def chunk_visibility(
    slot_positions: torch.Tensor,
    query_positions: torch.Tensor,
    evictions: Sequence[Sequence[ChunkEviction]],
) -> torch.Tensor:
    """Which keys each new query may see.

    Args:
        slot_positions: [B, S] logical positions of cached slots, -1 = padding.
        query_positions: [B, q] logical positions of the chunk's tokens, -1 = padding query.
        evictions: per row, spans evicted after a given chunk token (hidden from later queries).

    Returns:
        BoolTensor [B, q, S + q]. A padding query sees only itself (keeps its state finite).
    """
    past = slot_positions.shape[1]
    key_positions = torch.cat([slot_positions, query_positions], dim=1)  # [B, S+q]
    keys = key_positions[:, None, :]
    allowed = (keys >= 0) & (keys <= query_positions[:, :, None])
    for row, row_evictions in enumerate(evictions):
        for after, span in row_evictions:
            in_span = (key_positions[row] >= span.start) & (key_positions[row] < span.stop)
            allowed[row, after + 1 :, :] &= ~in_span
    # Branch-free (no device->host sync): a padding query's row becomes "itself only".
    queries = query_positions.shape[1]
    device = query_positions.device
    own_key = (
        torch.arange(past + queries, device=device)[None, :] == past + torch.arange(queries, device=device)[:, None]
    )
    return torch.where((query_positions < 0)[:, :, None], own_key[None], allowed)


def to_additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, q, K] bool -> [B, 1, q, K] float mask (0 where allowed, the dtype's min elsewhere)."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def window_limit(
    allowed: torch.Tensor, key_positions: torch.Tensor, query_positions: torch.Tensor, window: int
) -> torch.Tensor:
    """Restrict `allowed` [B, q, K] to keys within `window` logical positions of each query."""
    return allowed & (key_positions[:, None, :] > query_positions[:, :, None] - window)

"""Block-sparse attention over a flex_attention `BlockMask`, in plain PyTorch (CPU and GPU, with backward).

flex_attention has no backward on CPU; this function gives the block-sparse memento mask a
training path there. For each query tile it gathers only the key tiles the `BlockMask` lists
(full or partial), builds the small [tile, selected keys] mask from the mask_mod, and runs
sdpa on that. Work and memory scale with the visible tiles, not with L^2.

Registered with transformers as ``attn_implementation="memento_block_sparse"``; on CUDA the same
`BlockMask` can go to ``"flex_attention"`` instead.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

ATTENTION_NAME = "memento_block_sparse"


def block_sparse_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """query [B, Hq, L, D], key/value [B, Hkv, L, D], attention_mask a `BlockMask` -> ([B, L, Hq, D], None)."""
    batch, heads, length, dim = query.shape
    groups = heads // key.shape[1]
    tile = attention_mask.BLOCK_SIZE[0]
    tiles = -(-length // tile)
    padding = tiles * tile - length
    key_tiles = F.pad(key, (0, 0, 0, padding)).view(batch, key.shape[1], tiles, tile, dim)
    value_tiles = F.pad(value, (0, 0, 0, padding)).view(batch, value.shape[1], tiles, tile, dim)
    in_tile = torch.arange(tile, device=query.device)
    mask_mod = attention_mask.mask_mod
    dropout_p = dropout if module.training else 0.0

    def tile_attention(
        row: int,
        start: int,
        stop: int,
        selected: torch.Tensor,
        q: torch.Tensor,
        k_tiles: torch.Tensor,
        v_tiles: torch.Tensor,
    ) -> torch.Tensor:
        keys = k_tiles[:, selected].reshape(k_tiles.shape[0], -1, dim)
        values = v_tiles[:, selected].reshape(v_tiles.shape[0], -1, dim)
        key_positions = (selected[:, None] * tile + in_tile).flatten()
        query_positions = torch.arange(start, stop, device=q.device)
        allowed = mask_mod(row, 0, query_positions[:, None], key_positions.clamp(max=length - 1)[None, :])
        allowed = allowed & (key_positions < length)[None, :]
        return F.scaled_dot_product_attention(
            q, keys, values, attn_mask=allowed, dropout_p=dropout_p, scale=scaling, enable_gqa=groups > 1
        )

    outputs = []
    for b in range(batch):
        rows = []
        for query_tile in range(tiles):
            start, stop = query_tile * tile, min((query_tile + 1) * tile, length)
            partial = attention_mask.kv_indices[b, 0, query_tile, : attention_mask.kv_num_blocks[b, 0, query_tile]]
            full = attention_mask.full_kv_indices[
                b, 0, query_tile, : attention_mask.full_kv_num_blocks[b, 0, query_tile]
            ]
            selected = torch.cat([full, partial]).long()
            arguments = (b, start, stop, selected, query[b, :, start:stop], key_tiles[b], value_tiles[b])
            if torch.is_grad_enabled() and dropout_p == 0.0:
                # keep only the inputs for backward; the gathered K/V and the tile's probabilities are recomputed
                rows.append(checkpoint(tile_attention, *arguments, use_reentrant=False))
            else:
                rows.append(tile_attention(*arguments))
        outputs.append(torch.cat(rows, dim=1))
    return torch.stack(outputs).transpose(1, 2).contiguous(), None


def register() -> str:
    """Register the function with transformers (idempotent); returns its attn_implementation name."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, block_sparse_attention)
    return ATTENTION_NAME

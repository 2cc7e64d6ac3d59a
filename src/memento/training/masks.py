"""Memento-attention masks for training, dense and block-sparse, from `key_hidden_from`.

Everything is built from `hidden_from` [B, L] (see `memento.attention.key_hidden_from`): query
q may attend key k iff ``k <= q < hidden_from[b, k]``. Right padding is encoded as
``hidden_from = k + 1`` for a padding key, so it is seen only by itself.
"""

from __future__ import annotations

import torch

BLOCK_SIZE = 128


def dense_mask(hidden_from: torch.Tensor) -> torch.Tensor:
    """BoolTensor [B, 1, L, L] (True = attend) for sdpa; O(L^2) memory."""
    length = hidden_from.shape[1]
    positions = torch.arange(length, device=hidden_from.device)
    causal = positions[None, :] <= positions[:, None]  # [q, k]
    visible = positions[None, :, None] < hidden_from[:, None, :]  # [B, q, k]
    return (causal[None] & visible)[:, None]


def additive_mask(hidden_from: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """FloatTensor [B, 1, L, L]: 0 where allowed, the dtype's min elsewhere (for eager attention)."""
    allowed = dense_mask(hidden_from)
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, torch.finfo(dtype).min)


def block_sparse_mask(hidden_from: torch.Tensor, block_size: int = BLOCK_SIZE):
    """A flex_attention `BlockMask` built tile by tile, never materialising the L x L mask.

    Per (query tile, key tile): empty when every key is after the tile's queries or hidden before
    its first query; full when every key precedes the first query and none is hidden before the
    last one; partial otherwise (then the mask_mod decides per element).
    """
    from torch.nn.attention.flex_attention import BlockMask

    batch, length = hidden_from.shape
    tiles = -(-length // block_size)
    padded = torch.full((batch, tiles * block_size), -1, dtype=torch.long, device=hidden_from.device)
    padded[:, :length] = hidden_from
    per_tile = padded.view(batch, tiles, block_size)
    # keys past L (tile padding) never count as visible
    min_hidden = per_tile.masked_fill(per_tile < 0, torch.iinfo(torch.long).max).amin(dim=2)  # [B, K tiles]
    max_hidden = per_tile.amax(dim=2)
    tile_index = torch.arange(tiles, device=hidden_from.device)
    first_query = tile_index * block_size  # per query tile
    last_query = torch.clamp(first_query + block_size - 1, max=length - 1)
    first_key = tile_index * block_size
    last_key = torch.clamp(first_key + block_size - 1, max=length - 1)
    after = first_key[None, :] > last_query[:, None]  # [Q, K]: every key after every query
    hidden_early = max_hidden[:, None, :] <= first_query[None, :, None]  # [B, Q, K]
    empty = after[None] | hidden_early
    full = (last_key[None, :] <= first_query[:, None])[None] & (min_hidden[:, None, :] > last_query[None, :, None])
    full &= (last_key[None, :] < length)[None]
    partial = ~empty & ~full

    def indices(selected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        counts = selected.sum(dim=-1).to(torch.int32)
        order = torch.argsort((~selected).to(torch.int8), dim=-1, stable=True).to(torch.int32)
        return counts[:, None], order[:, None]

    kv_num, kv_idx = indices(partial)
    full_num, full_idx = indices(full)

    def mask_mod(b, h, q, k):
        return (k <= q) & (q < hidden_from[b, k])

    return BlockMask.from_kv_blocks(
        kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=block_size, mask_mod=mask_mod, seq_lengths=(length, length)
    )

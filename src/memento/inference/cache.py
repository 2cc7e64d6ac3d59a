"""A KV cache whose slots can be dropped in place, tracking the logical position of every slot."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from memento.attention import EvictedSpan
from memento.inference import hf_cache


class EvictingKVCache:
    """K/V for a batch of sequences, stored left-padded in a transformers `DynamicCache`.

    Physical slots hold tokens in logical order; `slot_positions[b, s]` is the logical position
    (what RoPE used) of slot s in row b, or -1 for a padding slot. Evicting a span marks its slots
    as padding; `compact()` then gathers every layer down to the longest row, so evicted K/V is
    really freed (nothing keeps a copy).

    The bookkeeping (`slot_positions`) lives on the host, so no decision of the decode loop waits
    for the device; `device_slots()` gives a device copy for the attention mask, uploaded (never
    downloaded) after a structural change and extended on `append`.
    """

    def __init__(self, batch_size: int, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.hf_cache = hf_cache.new_cache()
        self.slot_positions = torch.empty(batch_size, 0, dtype=torch.long)
        self._device_slots: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.slot_positions.shape[0]

    @property
    def physical_length(self) -> int:
        """Slots per row, padding included (the S of every layer's [B, H, S, D])."""
        return self.slot_positions.shape[1]

    def live_tokens(self) -> list[int]:
        """Cached tokens per row, padding excluded (host bookkeeping: no device sync)."""
        return (self.slot_positions >= 0).sum(dim=1).tolist()

    def all_visible(self) -> bool:
        """Every slot of every row live (plain causal attention over the physical slots)."""
        return bool((self.slot_positions >= 0).all())

    def device_slots(self) -> torch.Tensor:
        """`slot_positions` on the cache's device, [B, S]."""
        if self._device_slots is None:
            self._device_slots = _upload(self.slot_positions, self.device)
        return self._device_slots

    def tensor_bytes(self) -> int:
        """Bytes of all key and value tensors actually allocated."""
        return sum(
            k.numel() * k.element_size() + v.numel() * v.element_size()
            for k, v in hf_cache.layer_tensors(self.hf_cache)
        )

    def append(self, positions: torch.Tensor, device_positions: torch.Tensor | None = None) -> None:
        """Record the slots the last forward appended: positions [B, q] (host), -1 for padding queries.

        `device_positions`, the same tensor already on the device, extends the device copy in place
        of a new upload.
        """
        self.slot_positions = torch.cat([self.slot_positions, positions.cpu()], dim=1)
        if self._device_slots is None or device_positions is None:
            self._device_slots = None
            return
        self._device_slots = torch.cat([self._device_slots, device_positions], dim=1)

    def _slots_in(self, row: int, span: EvictedSpan) -> torch.Tensor:
        positions = self.slot_positions[row]
        return (positions >= span.start) & (positions < span.stop)

    def evict(self, row: int, spans: Sequence[EvictedSpan]) -> None:
        """Mark the slots of `spans` (logical positions) in `row` as free; `compact()` releases them."""
        for span in spans:
            self.slot_positions[row, self._slots_in(row, span)] = -1
        self._device_slots = None

    def compact(self) -> None:
        """Drop padding slots down to the longest row, left-padding the others; no-op if nothing is free."""
        valid = self.slot_positions >= 0
        length = int(valid.sum(dim=1).max()) if self.batch_size else 0
        if length == self.physical_length:
            return
        self._device_slots = None
        if self.batch_size == 1:
            index = valid[0].nonzero().flatten()
            self.slot_positions = self.slot_positions[:, index]
            on_device = _upload(index, self.device)
            hf_cache.map_layers(self.hf_cache, lambda t: t.index_select(2, on_device))
            return
        slots = torch.arange(self.physical_length)
        # padding first, then live slots in logical order; keep the last `length` of each row
        order = torch.argsort(valid.long() * self.physical_length + slots, dim=1)[:, -length:]
        self.slot_positions = self.slot_positions.gather(1, order)
        order = _upload(order, self.device)

        def gather(tensor: torch.Tensor) -> torch.Tensor:
            batch, heads, _, dim = tensor.shape
            return tensor.gather(2, order[:, None, :, None].expand(batch, heads, length, dim))

        hf_cache.map_layers(self.hf_cache, gather)

    def select_rows(self, rows: Sequence[int]) -> None:
        """Keep only these batch rows (finished sequences leave the batch), then compact."""
        index = torch.tensor(list(rows), dtype=torch.long)
        self.slot_positions = self.slot_positions.index_select(0, index)
        self._device_slots = None
        on_device = _upload(index, self.device)
        hf_cache.map_layers(self.hf_cache, lambda t: t.index_select(0, on_device))
        self.compact()


def _upload(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device without a sync (a blocking copy would wait for every queued kernel)."""
    return tensor.to(device, non_blocking=True)

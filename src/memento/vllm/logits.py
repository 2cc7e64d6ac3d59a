"""`max_block_tokens` as a vLLM v1 logits processor: force ``<|block_end|>`` at the cap.

The same rule as `memento.inference.logits.MaxBlockTokensProcessor`: each request is followed by
a `BlockTracker` (prompt, then generated tokens as they arrive), and while the tracker's open block
holds ``max_block_tokens`` reasoning tokens only ``<|block_end|>`` may follow. The cap comes from the
request's ``extra_args["block_masking_config"]`` or the engine's ``MEMENTO_BLOCK_MASKING_CONFIG``.
Pass ``logits_processors=["memento.vllm.logits:MaxBlockTokensLogitsProcessor"]`` (or
``--logits-processors`` on the server).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from memento.attention import BlockTracker
from memento.config import MementoConfig
from memento.vllm.state import engine_config, requested_config, special_ids_for


@dataclass
class _Row:
    cap: int
    tracker: BlockTracker  # fed the prompt, then every generated token
    output_ids: list[int]  # vLLM's live list of the request's generated tokens
    scanned: int = 0  # generated tokens already fed


class MaxBlockTokensLogitsProcessor(LogitsProcessor):
    """Per batch row: the tracker's open block; rows at their cap may only emit ``<|block_end|>``."""

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        model_config = vllm_config.model_config
        self.default = engine_config()
        self.special_ids = special_ids_for(model_config.tokenizer, model_config.trust_remote_code, self.default)
        self.rows: dict[int, _Row] = {}

    def is_argmax_invariant(self) -> bool:
        return False  # forcing a token changes greedy choices

    def _new_row(self, params: Any, prompt_ids: list[int] | None, output_ids: list[int]) -> _Row | None:
        config = requested_config(getattr(params, "extra_args", None), self.default)
        if config is None or not config.enable or config.max_block_tokens <= 0:
            return None
        tracker = BlockTracker(
            self.special_ids, MementoConfig(enable=False, require_assistant_section=config.require_assistant_section)
        )
        tracker.feed_many(prompt_ids or [])
        return _Row(config.max_block_tokens, tracker, output_ids)

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self.rows, batch_update, self._new_row)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """logits [batch, vocab] -> rows at their cap forced to ``<|block_end|>``."""
        forced = []
        for index, row in self.rows.items():
            while row.scanned < len(row.output_ids):
                row.tracker.feed(row.output_ids[row.scanned])
                row.scanned += 1
            if row.tracker.in_block and row.tracker.open_block_tokens >= row.cap:
                forced.append(index)
        if forced:
            rows = torch.tensor(forced, device=logits.device)
            logits[rows] = float("-inf")
            logits[rows, self.special_ids.block_end] = 0.0
        return logits

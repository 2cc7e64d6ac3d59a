"""`max_block_tokens` as a vLLM v1 logits processor: force ``<|block_end|>`` at the cap.

The same rule as `memento.inference.logits.MaxBlockTokensProcessor` (the open block is the last
``<|block_start|>`` with no ``<|block_end|>`` after it; at ``max_block_tokens`` reasoning tokens
only ``<|block_end|>`` may follow), kept incrementally per request. The cap comes from the
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

from memento.vllm.state import engine_config, requested_config, special_ids_for


@dataclass
class _Row:
    cap: int
    output_ids: list[int]  # vLLM's live list of the request's generated tokens
    last_start: int  # position of the last <|block_start|>, -1 if none
    last_end: int
    scanned: int  # generated tokens already looked at
    prompt_length: int


class MaxBlockTokensLogitsProcessor(LogitsProcessor):
    """Per batch row: the open block's length; rows at their cap may only emit ``<|block_end|>``."""

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        model_config = vllm_config.model_config
        self.special_ids = special_ids_for(model_config.tokenizer, model_config.trust_remote_code)
        self.default = engine_config()
        self.rows: dict[int, _Row] = {}

    def is_argmax_invariant(self) -> bool:
        return False  # forcing a token changes greedy choices

    def _new_row(self, params: Any, prompt_ids: list[int] | None, output_ids: list[int]) -> _Row | None:
        config = requested_config(getattr(params, "extra_args", None), self.default)
        if config is None or not config.enable or config.max_block_tokens <= 0:
            return None
        prompt = list(prompt_ids or [])
        last_start = max((i for i, t in enumerate(prompt) if t == self.special_ids.block_start), default=-1)
        last_end = max((i for i, t in enumerate(prompt) if t == self.special_ids.block_end), default=-1)
        return _Row(config.max_block_tokens, output_ids, last_start, last_end, 0, len(prompt))

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self.rows, batch_update, self._new_row)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """logits [batch, vocab] -> rows at their cap forced to ``<|block_end|>``."""
        forced = []
        for index, row in self.rows.items():
            while row.scanned < len(row.output_ids):
                token = row.output_ids[row.scanned]
                position = row.prompt_length + row.scanned
                if token == self.special_ids.block_start:
                    row.last_start = position
                elif token == self.special_ids.block_end:
                    row.last_end = position
                row.scanned += 1
            length = row.prompt_length + len(row.output_ids)
            if row.last_start > row.last_end and length - 1 - row.last_start >= row.cap:
                forced.append(index)
        if forced:
            rows = torch.tensor(forced, device=logits.device)
            logits[rows] = float("-inf")
            logits[rows, self.special_ids.block_end] = 0.0
        return logits

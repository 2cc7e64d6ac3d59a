"""A vLLM v1 logits processor forcing scripted tokens: `memento verify`'s memento closed during decoding.

The script is a request's ``extra_args["memento_verify_script"]`` (`memento.vllm.verify_script`).
"""

from __future__ import annotations

from typing import Any

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from memento.vllm.verify_script import FREE, SCRIPT_KEY


class ScriptedTokens(LogitsProcessor):
    """Rows whose script forces the next token get -inf everywhere but that token."""

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        self.rows: dict[int, tuple[list[int], list[int]]] = {}  # batch index -> (script, vLLM's live output ids)

    def is_argmax_invariant(self) -> bool:
        return False  # forcing a token changes greedy choices

    @staticmethod
    def _new_row(
        params: Any, prompt_ids: list[int] | None, output_ids: list[int]
    ) -> tuple[list[int], list[int]] | None:
        script = (getattr(params, "extra_args", None) or {}).get(SCRIPT_KEY)
        return (list(script), output_ids) if script else None

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self.rows, batch_update, self._new_row)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """logits [batch, vocab] -> scripted rows forced to their next token."""
        rows, tokens = [], []
        for index, (script, output_ids) in self.rows.items():
            step = len(output_ids)
            if step < len(script) and script[step] != FREE:
                rows.append(index)
                tokens.append(script[step])
        if rows:
            at = torch.tensor(rows, device=logits.device)
            logits[at] = float("-inf")
            logits[at, torch.tensor(tokens, device=logits.device)] = 0.0
        return logits

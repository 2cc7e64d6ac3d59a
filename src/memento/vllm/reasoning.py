"""vLLM reasoning parser ``memento``: the thinking (blocks and mementos) in ``reasoning_content``, the answer in
``content``.

A memento model writes ``<think> <|block_start|> ... <|summary_end|> ... </think> answer``. The markers
are special tokens, which vLLM drops from the text by default; this parser asks for them
(``skip_special_tokens`` off, as vLLM's parsers for models with special reasoning markers do) so the
reasoning keeps its block structure, then splits at ``</think>`` as vLLM's ``deepseek_r1`` parser does
(reasoning first even when the chat template already opened ``<think>`` in the prompt).

`memento serve` turns it on for memento models (``--reasoning-parser memento``, with
``--reasoning-parser-plugin memento.vllm.reasoning`` so vLLM imports this module).
"""

from __future__ import annotations

from typing import Any

from vllm.reasoning import ReasoningParserManager
from vllm.reasoning.deepseek_r1_reasoning_parser import DeepSeekR1ReasoningParser

from memento.format import THINK_END, THINK_START

NAME = "memento"


@ReasoningParserManager.register_module(NAME)
class MementoReasoningParser(DeepSeekR1ReasoningParser):
    """``<think>`` ... ``</think>`` with the memento markers kept in the reasoning."""

    @property
    def start_token(self) -> str:
        return THINK_START

    @property
    def end_token(self) -> str:
        return THINK_END

    def adjust_request(self, request: Any) -> Any:
        """Keep the special tokens in the text: the reasoning's block and memento markers, and ``</think>``
        itself, which the split needs."""
        request.skip_special_tokens = False
        return request

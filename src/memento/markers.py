"""The marker strings of the MEMENTO format and of ChatML (re-exported by `memento.format`)."""

from __future__ import annotations

BLOCK_START = "<|block_start|>"
BLOCK_END = "<|block_end|>"
SUMMARY_START = "<|summary_start|>"
SUMMARY_END = "<|summary_end|>"
THINK_START = "<think>"
THINK_END = "</think>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ASSISTANT_ROLE = "assistant"

MEMENTO_TOKENS: tuple[str, str, str, str] = (BLOCK_START, BLOCK_END, SUMMARY_START, SUMMARY_END)
"""The four tokens MEMENTO adds to a vocabulary, in the canonical order."""

ASSISTANT_HEADER = f"{IM_START}{ASSISTANT_ROLE}"
"""Text that opens the assistant turn in ChatML; special tokens before it are prompt."""

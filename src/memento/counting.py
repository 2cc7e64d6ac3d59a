"""Turning traces into token ids without a hub: a local Hugging Face tokenizer, or an approximation.

`load_tokenizer(None)` gives `ApproximateTokenizer`, which splits text into word pieces of at
most four characters (about what a BPE tokenizer does on English and math) and interns them,
so decoding is exact and counts are deterministic. Reports built on it say they are approximate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memento.attention import find_assistant_start
from memento.format import (
    IM_END,
    IM_START,
    MEMENTO_TOKENS,
    THINK_END,
    THINK_START,
    SpecialIds,
    Trace,
    render_chat,
    split_on_markers,
)

_MARKERS = (*MEMENTO_TOKENS, THINK_START, THINK_END, IM_START, IM_END)
_WORD_PIECES = re.compile(r"\s*\S+|\s+")
_CHARS_PER_PIECE = 4


class ApproximateTokenizer:
    """Deterministic stand-in tokenizer: markers are single tokens, other text ~4 characters a token.

    Not a real vocabulary: ids are assigned to pieces as they are first seen (per instance).
    """

    approximate = True

    def __init__(self) -> None:
        self._ids: dict[str, int] = {marker: index for index, marker in enumerate(_MARKERS)}
        self._pieces: list[str] = list(_MARKERS)

    def _intern(self, piece: str) -> int:
        token_id = self._ids.get(piece)
        if token_id is None:
            token_id = self._ids[piece] = len(self._pieces)
            self._pieces.append(piece)
        return token_id

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of `text` (markers map to their fixed ids)."""
        ids = []
        for chunk, is_marker in split_on_markers(text):
            if is_marker:
                ids.append(self._ids[chunk])
                continue
            for word in _WORD_PIECES.findall(chunk):
                ids.extend(self._intern(word[i : i + _CHARS_PER_PIECE]) for i in range(0, len(word), _CHARS_PER_PIECE))
        return ids

    def decode(self, token_ids: list[int]) -> str:
        return "".join(self._pieces[i] for i in token_ids)

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self._ids.get(token)

    def __len__(self) -> int:
        return len(self._pieces)


def load_tokenizer(path: str | Path | None) -> Any:
    """A Hugging Face tokenizer from a local path (memento tokens added in memory when missing),
    or an `ApproximateTokenizer` when `path` is None."""
    if path is None:
        return ApproximateTokenizer()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    missing = [t for t in MEMENTO_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    return tokenizer


def is_approximate(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "approximate", False))


@dataclass(frozen=True)
class EncodedTrace:
    """A trace as the token ids a model would see: ChatML prompt + assistant turn."""

    token_ids: list[int]
    special_ids: SpecialIds
    prompt_length: int


def encode_trace(trace: Trace, tokenizer: Any) -> EncodedTrace:
    """Render `trace` as ChatML (no system prompt) and tokenize it; the prompt ends after the assistant header."""
    special_ids = SpecialIds.from_tokenizer(tokenizer)
    ids = list(tokenizer.encode(render_chat(trace), add_special_tokens=False))
    return EncodedTrace(ids, special_ids, find_assistant_start(ids, special_ids))

"""Incremental detokenization with stop strings, per generated sequence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memento.inference.forward import Row


def text_delta(tokenizer: Any, row: Row, stop: Sequence[str] | None, *, final: bool = False) -> str:
    """Detokenize incrementally (prefix/read offsets, as serving engines do); cut at a stop string.

    An incomplete character is held back until the next token, or flushed as is when `final`.
    """
    if tokenizer is None or row.hit_stop_string:
        return ""
    ids = row.result.token_ids
    prefix = tokenizer.decode(ids[row.prefix_offset : row.read_offset], skip_special_tokens=False)
    window = tokenizer.decode(ids[row.prefix_offset :], skip_special_tokens=False)
    if len(window) <= len(prefix) or (window.endswith("\ufffd") and not final):
        return ""  # an incomplete character: wait for the next token
    delta = window[len(prefix) :]
    row.prefix_offset, row.read_offset = row.read_offset, len(ids)
    text = row.result.text + delta
    if stop:
        # a stop string may straddle the previous text and this delta
        search_from = max(0, len(row.result.text) - max(len(s) for s in stop))
        cuts = [found for found in (text.find(s, search_from) for s in stop) if found >= 0]
        if cuts:
            cut = min(cuts)
            delta = delta[: max(0, cut - len(row.result.text))]
            text = text[:cut]
            row.hit_stop_string = True
    row.result.text = text
    return delta

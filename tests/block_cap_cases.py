"""Edge cases of the open block that `max_block_tokens` caps, shared by the HF and vLLM processor tests.

Each case is a list of symbols, spelled in a vocabulary by `spell`. The processors must agree with
`BlockTracker.in_block` / `open_block_tokens` after every prefix of every case.
"""

from __future__ import annotations

from memento.format import SpecialIds

CASES: dict[str, list[str]] = {
    "plain block": ["THINK", "BS", "t", "t", "t", "BE", "SS", "t", "SE", "BS", "t", "t"],
    # an unclosed <|block_start|> in the user's turn is prompt text, not an open block
    "block start in the prompt": ["IMS", "USER", "BS", "t", "t", "IME", "HEADER", "THINK", "t", "t", "BS", "t"],
    # a second <|block_start|> inside a block is block content: the block opened at the first one
    "nested block start": ["BS", "t", "t", "BS", "t", "t", "BE", "t"],
    # a new turn abandons a block left open
    "turn ends inside a block": ["HEADER", "BS", "t", "t", "t", "IME", "IMS", "USER", "t", "IME", "HEADER", "t", "t"],
    # memento markers inside an open block are block content
    "memento markers inside a block": ["BS", "t", "SS", "t", "SE", "t", "BE"],
    # after </think> a new block is tracked (multi-turn, or a block in the answer)
    "block after think end": ["THINK", "BS", "t", "BE", "SS", "t", "SE", "END", "t", "BS", "t", "t", "t"],
    "stray block end": ["BE", "t", "BS", "t", "BE", "BE", "t"],
}


def spell(symbols: list[str], special_ids: SpecialIds, *, text: int, user: int) -> list[int]:
    """Token ids of a case in one vocabulary."""
    named = {
        "BS": special_ids.block_start,
        "BE": special_ids.block_end,
        "SS": special_ids.summary_start,
        "SE": special_ids.summary_end,
        "THINK": special_ids.think_start,
        "END": special_ids.think_end,
        "IMS": special_ids.im_start,
        "IME": special_ids.im_end,
        "t": text,
        "USER": user,
    }
    ids: list[int] = []
    for symbol in symbols:
        if symbol == "HEADER":
            assert special_ids.assistant_header is not None
            ids.extend(special_ids.assistant_header)
        else:
            token = named[symbol]
            assert token is not None, symbol
            ids.append(token)
    return ids

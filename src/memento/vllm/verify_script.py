"""A memento closed during decoding, for `memento verify`: the tokens its requests force (no vLLM import).

Each verify request carries ``extra_args["memento_verify_script"]``: entry i is the token forced as
the request's i-th generated token (`memento.vllm.forcing.ScriptedTokens`), -1 leaves it to greedy
decoding. The script closes the prompt's open block and writes a memento (``<|block_end|>
<|summary_start|> ... <|summary_end|> <|block_start|>``), so the plugin evicts a span in the middle
of decoding, in the engine's own graph mode. vLLM reports raw log-probs (before logits processors),
so forced tokens are scored like any other.
"""

from __future__ import annotations

import random
from typing import Any

SCRIPT_KEY = "memento_verify_script"
FREE = -1
"""A script entry left to greedy decoding."""
PROCESSOR = "memento.vllm.forcing:ScriptedTokens"
MEMENTO_TOKENS = (4, 8)
"""Text tokens in the scripted memento (inclusive range)."""
MIN_TOKENS = MEMENTO_TOKENS[1] + 4 + 2
"""Generated tokens a verify request needs: the longest script (4 markers around the memento), then two free ones."""


def decode_script(special_ids: Any, text_ids: list[int], rng: random.Random) -> list[int]:
    """Close the open block at once and write a memento of 4-8 text tokens; then a new block, decoded freely."""
    memento = rng.choices(text_ids, k=rng.randint(*MEMENTO_TOKENS))
    return [
        special_ids.block_end,
        special_ids.summary_start,
        *memento,
        special_ids.summary_end,
        special_ids.block_start,
    ]

"""`memento verify`'s scripted memento closes the open block of the prompt (issue 30 item 3: a memento closed
during decoding)."""

from __future__ import annotations

import random

from transformers import AutoTokenizer

from memento.attention import BlockTracker
from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.toy import CHECKPOINT
from memento.vllm.verify import memento_prompts
from memento.vllm.verify_script import MIN_TOKENS, decode_script


def test_the_script_closes_the_open_block_with_a_memento():
    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT)
    ids = SpecialIds.from_tokenizer(tokenizer)
    script = decode_script(ids, [100, 101, 102], random.Random(0))
    assert len(script) + 2 <= MIN_TOKENS
    tracker = BlockTracker(ids, MementoConfig(mask_delimiters=False))
    tracker.feed_many(memento_prompts(tokenizer, 1, seed=0)[0])  # three closed blocks, then an open one
    assert tracker.in_block
    evicted = [len(tracker.feed(token).evicted) for token in script]
    assert evicted[script.index(ids.summary_end)] == 1 and sum(evicted) == 1, evicted

"""vLLM's `max_block_tokens` processor follows each request with the tracker, prompt then output."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from vllm.v1.sample.logits_processor import BatchUpdate

from memento.attention import BlockTracker
from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.vllm.logits import MaxBlockTokensLogitsProcessor
from memento.vllm.state import CONFIG_ENV
from tests.block_cap_cases import CASES, spell

pytestmark = pytest.mark.vllm


@pytest.mark.parametrize("require", [True, False])
@pytest.mark.parametrize("name", sorted(CASES))
def test_vllm_processor_agrees_with_the_tracker(tokenizer, tokenizer_dir, monkeypatch, name, require):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    special_ids = SpecialIds.from_tokenizer(tokenizer)
    ids = spell(CASES[name], special_ids, text=tokenizer.encode(" 42")[0], user=tokenizer.encode("user")[0])
    vllm_config = SimpleNamespace(model_config=SimpleNamespace(tokenizer=str(tokenizer_dir), trust_remote_code=False))
    cap = 2
    config = {"mask_delimiters": False, "max_block_tokens": cap, "require_assistant_section": require}
    params = SimpleNamespace(extra_args={"block_masking_config": {"enable": True, **config}})
    for prompt_length in range(1, len(ids)):
        processor = MaxBlockTokensLogitsProcessor(vllm_config, torch.device("cpu"), False)
        output: list[int] = []
        processor.update_state(BatchUpdate(1, [], [(0, params, ids[:prompt_length], output)], []))
        for length in range(prompt_length, len(ids) + 1):
            output[:] = ids[prompt_length:length]
            forced = processor.apply(torch.zeros(1, len(tokenizer)))
            tracker = BlockTracker(special_ids, MementoConfig(**config))
            tracker.feed_many(ids[:length])
            expected = tracker.in_block and tracker.open_block_tokens >= cap
            assert bool(forced[0].min() < 0) == expected, (prompt_length, length)
            if expected:
                assert int(forced[0].argmax()) == special_ids.block_end

"""`MementoRollout`: one completion per prompt TRL hands over, with the log-probs recorded while sampling."""

from __future__ import annotations

import pytest
import torch

from memento.config import MementoConfig
from memento.inference.sampling import SamplingOptions
from memento.rl.rewards import COMPLETION_TEXT
from memento.rl.rollout import BLOCKS, KV_PEAK_TOKENS, MementoRollout
from tests.conftest import build_tokenizer
from tests.models import save_checkpoint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    tokenizer = build_tokenizer()
    directory = tmp_path_factory.mktemp("tiny")
    save_checkpoint(directory, tokenizer, seed=1)
    return AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, dtype=torch.float32), tokenizer


def test_one_completion_per_prompt_with_logprobs_and_memento_stats(tiny):
    model, tokenizer = tiny
    model.train()
    rollout = MementoRollout(
        tokenizer,
        MementoConfig(mask_delimiters=False),
        SamplingOptions(max_new_tokens=12, temperature=1.0),
        batch_size=3,
        seed=5,
    )
    prompts = ["add 3 and 4", "add 3 and 4", "check 12", "check 12"]  # TRL repeats each prompt G times
    output = rollout.generate(model, prompts)
    assert model.training  # restored after sampling in eval mode
    assert len(output["completion_ids"]) == 4 and output["prompt_ids"][0] == output["prompt_ids"][1]
    for ids, logprobs in zip(output["completion_ids"], output["logprobs"], strict=True):
        assert len(ids) == len(logprobs) and all(lp <= 0 for lp in logprobs)
    assert len(output[COMPLETION_TEXT]) == len(output[BLOCKS]) == len(output[KV_PEAK_TOKENS]) == 4
    assert output["completion_ids"][0] != output["completion_ids"][1]  # the group's samples differ
    second = rollout.generate(model, prompts)
    assert second["completion_ids"] != output["completion_ids"]  # each call draws with a new seed


def test_conversational_prompts_need_a_chat_template(tiny):
    model, tokenizer = tiny
    rollout = MementoRollout(
        tokenizer, MementoConfig(mask_delimiters=False), SamplingOptions(max_new_tokens=4, temperature=1.0)
    )
    with pytest.raises(ValueError, match="chat template"):
        rollout.generate(model, [[{"role": "user", "content": "hi"}]] * 2)


def test_rollouts_refuse_greedy_or_unbounded_sampling_and_an_empty_batch(tiny):
    _, tokenizer = tiny
    config = MementoConfig(mask_delimiters=False)
    with pytest.raises(ValueError, match="temperature > 0"):
        MementoRollout(tokenizer, config, SamplingOptions(max_new_tokens=4, temperature=0.0))
    with pytest.raises(ValueError, match="max_new_tokens"):
        MementoRollout(tokenizer, config, SamplingOptions(temperature=1.0))
    with pytest.raises(ValueError, match="batch_size"):
        MementoRollout(tokenizer, config, SamplingOptions(max_new_tokens=4, temperature=1.0), batch_size=0)
    with pytest.raises(ValueError, match="top_p"):  # generation's own checks apply to rollouts
        SamplingOptions(top_p=0)

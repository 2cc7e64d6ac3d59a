"""`token_logprobs` equals the log-probs recorded while sampling with real eviction (and plain causal does not)."""

from __future__ import annotations

import random

import pytest
import torch

from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.inference import MementoGenerator
from memento.inference.loading import load_model_and_tokenizer
from memento.rl import token_logprobs
from memento.toy.task import ToyTask
from memento.toy.train import CHECKPOINT
from tests.models import ASSISTANT, IM_END, IM_START, SE, SPECIAL_IDS, TEXT, THINK, USER, ScheduleProcessor, tiny_model

TOLERANCE = 1e-4


def right_padded(sequences: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad, dtype=torch.long)
    mask = torch.zeros(len(sequences), length, dtype=torch.long)
    for b, sequence in enumerate(sequences):
        ids[b, : len(sequence)] = torch.tensor(sequence)
        mask[b, : len(sequence)] = 1
    return ids, mask


def compare(model, results, special_ids: SpecialIds, config: MementoConfig, pad: int = 0) -> tuple[float, float]:
    """(largest |recorded - memento|, largest |recorded - plain causal|) over every sampled token."""
    ids, mask = right_padded([r.prompt_ids + r.token_ids for r in results], pad)
    with torch.no_grad():
        memento = token_logprobs(model, ids, special_ids, config, attention_mask=mask)
        causal = token_logprobs(model, ids, special_ids, MementoConfig.disabled(), attention_mask=mask)
    memento_error, causal_gap = 0.0, 0.0
    for b, result in enumerate(results):
        start = len(result.prompt_ids) - 1
        recorded = torch.tensor(result.logprobs)
        span = slice(start, start + len(result.token_ids))
        memento_error = max(memento_error, float((memento[b, span] - recorded).abs().max()))
        causal_gap = max(causal_gap, float((causal[b, span] - recorded).abs().max()))
    return memento_error, causal_gap


@pytest.mark.parametrize("family", ["qwen3", "llama"])
@pytest.mark.parametrize("keep_last_n_blocks", [0, 1])
@pytest.mark.parametrize("mask_delimiters", [False, True])
def test_sampling_logprobs_equal_token_logprobs_tiny_models(family, keep_last_n_blocks, mask_delimiters):
    model = tiny_model(family, attn="sdpa", seed=3)
    config = MementoConfig(keep_last_n_blocks=keep_last_n_blocks, mask_delimiters=mask_delimiters)
    rng = random.Random(7)
    # the first token sets each row's block length (ScheduleProcessor), so rows evict at different steps
    prompts = [
        [first, IM_START, USER, *(rng.choice(TEXT) for _ in range(n)), IM_END, IM_START, ASSISTANT, THINK]
        for first, n in ((0, 3), (2, 6), (4, 9))
    ]
    generator = MementoGenerator(model, None, config, special_ids=SPECIAL_IDS)
    results = generator.generate(
        prompts,
        max_new_tokens=30,
        temperature=1.0,
        seed=11,
        logits_processor=[ScheduleProcessor()],
        return_logprobs=True,
    )
    for result in results:
        assert len(result.logprobs) == len(result.token_ids) == 30
        closed = [i for i, token in enumerate(result.token_ids) if token == SE]
        assert len(closed) >= 2 and closed[0] < 15  # finished blocks, with sampled tokens after their eviction
        assert result.evictions
    memento_error, causal_gap = compare(model, results, SPECIAL_IDS, config)
    assert memento_error < TOLERANCE
    assert causal_gap > 100 * TOLERANCE


@pytest.mark.slow
def test_sampling_logprobs_equal_token_logprobs_embedded_toy_model():
    """The shipped memento model writes its own blocks when sampled at temperature 1 (no steering)."""
    model, tokenizer = load_model_and_tokenizer(CHECKPOINT, dtype="float32", device="cpu")
    special_ids = SpecialIds.from_tokenizer(tokenizer)
    config = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)
    task = ToyTask()
    prompts = [trace.prompt for _, trace in task.examples(2, seed=5)]
    results = MementoGenerator(model, tokenizer, config).generate(
        prompts, max_new_tokens=300, temperature=1.0, seed=2, return_logprobs=True
    )
    for result in results:
        assert result.token_ids.count(special_ids.summary_end) >= 3
    memento_error, causal_gap = compare(model, results, special_ids, config, pad=tokenizer.pad_token_id)
    assert memento_error < TOLERANCE
    # a trained model leans little on evicted blocks, but plain causal still misses the tolerance by far
    assert causal_gap > 5 * TOLERANCE


def test_temperature_scales_the_recorded_logprobs():
    model = tiny_model("qwen3", seed=1)
    config = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)
    prompt = [1, IM_START, USER, 5, 6, IM_END, IM_START, ASSISTANT, THINK]
    (result,) = MementoGenerator(model, None, config, special_ids=SPECIAL_IDS).generate(
        [prompt],
        max_new_tokens=30,
        temperature=0.7,
        seed=0,
        logits_processor=[ScheduleProcessor()],
        return_logprobs=True,
    )
    ids = torch.tensor([prompt + result.token_ids])
    with torch.no_grad():
        scaled = token_logprobs(model, ids, SPECIAL_IDS, config, temperature=0.7)[0, len(prompt) - 1 :]
        unscaled = token_logprobs(model, ids, SPECIAL_IDS, config)[0, len(prompt) - 1 :]
    assert float((scaled - torch.tensor(result.logprobs)).abs().max()) < TOLERANCE
    assert float((unscaled - torch.tensor(result.logprobs)).abs().max()) > 100 * TOLERANCE


def test_padding_rows_match_unpadded_rows():
    model = tiny_model("llama", seed=2)
    config = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)
    from tests.models import memento_sequence

    rng = random.Random(0)
    sequences = [memento_sequence(rng, blocks=b) for b in (2, 4)]
    ids, mask = right_padded(sequences)
    with torch.no_grad():
        batched = token_logprobs(model, ids, SPECIAL_IDS, config, attention_mask=mask)
        for b, sequence in enumerate(sequences):
            alone = token_logprobs(model, torch.tensor([sequence]), SPECIAL_IDS, config)[0]
            assert torch.allclose(batched[b, : len(sequence) - 1], alone, atol=1e-5)
            assert bool((batched[b, len(sequence) - 1 :] == 0).all())


def test_bad_inputs_are_refused_with_one_clear_line():
    model = tiny_model("qwen3")
    ids = torch.tensor([[IM_START, USER, 3, IM_END]])
    with pytest.raises(ValueError, match="right padding"):
        token_logprobs(
            model, ids, SPECIAL_IDS, MementoConfig(mask_delimiters=False), attention_mask=torch.tensor([[0, 1, 1, 1]])
        )
    with pytest.raises(ValueError, match="restart_mode"):
        token_logprobs(model, ids, SPECIAL_IDS, MementoConfig(mask_delimiters=False, restart_mode=True))

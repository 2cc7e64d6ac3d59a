"""Batched generation, streaming, the block cap, and the cache's real memory."""

from __future__ import annotations

import logging
import random

import pytest
import torch

from memento.attention import analyze
from memento.config import MementoConfig
from memento.inference import MaxBlockTokensProcessor, MementoGenerator
from memento.kv import KVGeometry, simulate
from tests.models import BE, BS, SPECIAL_IDS, ScheduleProcessor, memento_sequence, tiny_model

CONFIG = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)


@pytest.fixture(scope="module")
def model():
    return tiny_model("qwen3", "sdpa")


def _prompts() -> list[list[int]]:
    rng = random.Random(5)
    # different lengths; one prompt already holds finished blocks (evicted at prefill)
    return [[1, 2, 3], [7, 8, 9, 10, 11, 12, 13], [4, *memento_sequence(rng, blocks=2, chat_prompt=False)[:-4]], [9]]


@pytest.mark.parametrize("config", [CONFIG, CONFIG.replace(keep_last_n_blocks=1), CONFIG.replace(mask_delimiters=True)])
def test_batched_greedy_equals_each_alone(model, config):
    generator = MementoGenerator(model, None, config, special_ids=SPECIAL_IDS)
    schedule = [ScheduleProcessor()]
    batched = generator.generate(_prompts(), max_new_tokens=60, logits_processor=schedule)
    alone = [generator.generate([prompt], max_new_tokens=60, logits_processor=schedule)[0] for prompt in _prompts()]
    for together, single in zip(batched, alone, strict=True):
        assert together.token_ids == single.token_ids
        assert together.evictions == single.evictions and together.kv_trace == single.kv_trace
    steps = {tuple(e.step for e in r.evictions) for r in batched}
    assert len(steps) == len(batched)  # evictions happened at different steps in each row
    assert all(len(r.evictions) >= 3 for r in batched)
    # generation and teacher forcing agree: greedy tokens are the argmax of score() (through the schedule)
    first = batched[1]
    scored = generator.score(first.prompt_ids + first.token_ids)
    ids = first.prompt_ids + first.token_ids
    for step, token in enumerate(first.token_ids):
        position = len(first.prompt_ids) + step - 1
        forced = ScheduleProcessor()(torch.tensor([ids[: position + 1]]), scored[position : position + 1])
        assert int(forced.argmax()) == token


def test_stream_yields_what_generate_returns(model):
    generator = MementoGenerator(model, None, CONFIG, special_ids=SPECIAL_IDS)
    schedule = [ScheduleProcessor()]
    results = []
    events = list(generator.stream(_prompts()[:2], max_new_tokens=12, logits_processor=schedule, results=results))
    for index, result in enumerate(results):
        mine = [e for e in events if e.index == index]
        assert [e.token_id for e in mine] == result.token_ids
        assert mine[-1].finish_reason == result.finish_reason == "length"
    assert (
        results[0].token_ids
        == generator.generate([_prompts()[0]], max_new_tokens=12, logits_processor=schedule)[0].token_ids
    )


def test_sampling_is_seeded(model):
    generator = MementoGenerator(model, None, CONFIG, special_ids=SPECIAL_IDS)
    kwargs = {"max_new_tokens": 15, "temperature": 0.9, "top_p": 0.95, "top_k": 40, "min_p": 0.01}
    first = generator.generate([[1, 2, 3]], seed=123, **kwargs)[0].token_ids
    assert generator.generate([[1, 2, 3]], seed=123, **kwargs)[0].token_ids == first
    assert generator.generate([[1, 2, 3]], seed=124, **kwargs)[0].token_ids != first


def test_per_sequence_seeds_do_not_depend_on_the_batch(model):
    generator = MementoGenerator(model, None, CONFIG, special_ids=SPECIAL_IDS)
    kwargs = {"max_new_tokens": 20, "temperature": 0.9, "top_k": 40}
    prompts = _prompts()
    batched = generator.generate(prompts, seeds=[11, 12, 13, 14], **kwargs)
    alone = [generator.generate([p], seeds=[s], **kwargs)[0] for p, s in zip(prompts, [11, 12, 13, 14], strict=True)]
    assert [r.token_ids for r in batched] == [r.token_ids for r in alone]
    assert [r.seed for r in batched] == [11, 12, 13, 14]
    swapped = generator.generate([prompts[0], prompts[0]], seeds=[11, 99], **kwargs)
    assert swapped[0].token_ids == batched[0].token_ids != swapped[1].token_ids
    with pytest.raises(ValueError, match="seeds for"):
        generator.generate(prompts, seeds=[1], **kwargs)


def test_sampling_leaves_the_global_rng_alone_and_records_its_seed(model):
    generator = MementoGenerator(model, None, CONFIG, special_ids=SPECIAL_IDS)
    kwargs = {"max_new_tokens": 15, "temperature": 1.0}
    torch.manual_seed(2024)
    state = torch.get_rng_state()
    drawn = generator.generate([[1, 2, 3], [4, 5]], **kwargs)
    seeded = generator.generate([[1, 2, 3]], seed=7, **kwargs)[0]
    assert torch.equal(torch.get_rng_state(), state)  # neither read nor reseeded
    assert seeded.seed == 7 and drawn[0].seed == drawn[1].seed is not None
    # the recorded seed reproduces the unseeded run
    again = generator.generate([[1, 2, 3], [4, 5]], seed=drawn[0].seed, **kwargs)
    assert [r.token_ids for r in again] == [r.token_ids for r in drawn]
    assert generator.generate([[1, 2, 3], [4, 5]], **kwargs)[0].seed != drawn[0].seed


def test_max_block_tokens_forces_block_end(model):
    config = CONFIG.replace(max_block_tokens=4)
    generator = MementoGenerator(model, None, config, special_ids=SPECIAL_IDS)
    never_ends = [ScheduleProcessor(with_block_end=False)]
    result = generator.generate([[2, 3]], max_new_tokens=40, logits_processor=never_ends)[0]
    layout = analyze([2, 3, *result.token_ids], SPECIAL_IDS, config)
    closed = [b for b in layout.blocks if b.end is not None]
    assert len(closed) >= 3 and all(b.end - b.start - 1 == 4 for b in closed)
    processor = MaxBlockTokensProcessor(SPECIAL_IDS, 2)
    scores = torch.zeros(2, 64)
    forced = processor(torch.tensor([[BS, 5, 6], [BS, 5, BE]]), scores)
    assert int(forced[0].argmax()) == BE and torch.equal(forced[1], scores[1])


def test_cache_memory_is_real_and_matches_the_simulator(model):
    sequence = memento_sequence(random.Random(9), blocks=6)
    geometry = KVGeometry.from_config(model.config, bytes_per_element=4)  # fp32 model
    generator = MementoGenerator(model, None, CONFIG, special_ids=SPECIAL_IDS)
    seen = []

    def check(cache):
        live = cache.live_tokens()[0]
        assert cache.physical_length == live  # batch of one: no padding slots
        assert cache.tensor_bytes() == geometry.bytes_per_token * live
        seen.append(live)

    generator.score(sequence, on_step=check)
    report = simulate(sequence, SPECIAL_IDS, geometry, CONFIG)
    assert seen == report.occupancy
    assert generator.last_result.kv_tokens_peak == report.peak_tokens
    assert report.num_evictions == 6 and max(seen) < len(sequence)


def test_generation_stops_at_the_models_last_position(caplog):
    model = tiny_model("qwen3", "sdpa", max_position_embeddings=32)
    generator = MementoGenerator(model, None, CONFIG, special_ids=SPECIAL_IDS)
    with caplog.at_level(logging.WARNING, logger="memento.inference"):
        short, long = generator.generate([[1, 2], list(range(1, 11))], max_new_tokens=25)
    assert (len(short.token_ids), short.finish_reason) == (25, "length")
    # prompt 10 + 22 generated = 32 positions, the model's last one; the warning names the numbers
    assert (len(long.token_ids), long.finish_reason) == (22, "length")
    assert "prompt 1: 10 tokens + max_new_tokens 25 exceed max_position_embeddings 32" in caplog.text
    assert "prompt 0" not in caplog.text
    with pytest.raises(ValueError, match=r"prompt 0 has 32 tokens, the model's max_position_embeddings is 32"):
        generator.generate([list(range(32))], max_new_tokens=1)
    with pytest.raises(ValueError, match=r"the sequence has 33 tokens, beyond the model's max_position_embeddings"):
        generator.score(list(range(1, 34)))

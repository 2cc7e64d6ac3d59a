"""The offline KV replay: the toy model's real tokenizer and geometry, prompts as the backends build them."""

from __future__ import annotations

import pytest

from memento.config import MementoConfig
from memento.eval.run.replay import INERT_SPECIAL_IDS, KVReplay, resolve_geometry
from memento.format import render_assistant
from memento.kv import KVGeometry, simulate
from memento.toy import CHECKPOINT
from memento.toy.task import HELD_OUT_SEED, ToyTask
from tests.conftest import build_tokenizer

MEMENTO = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)


@pytest.fixture(scope="module")
def replay() -> KVReplay:
    return KVReplay.load(CHECKPOINT, resolve_geometry(model=CHECKPOINT))


def test_prompt_ids_are_the_generators(replay):
    from transformers import AutoTokenizer

    from memento.inference.generator import MementoGenerator

    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT)
    generator = MementoGenerator.__new__(MementoGenerator)
    generator.tokenizer = tokenizer
    prompt = "sum mod 10: a:1 b:2"
    assert replay.prompt_ids(prompt) == generator._chat_ids(prompt)


def test_a_toy_trace_replayed_with_and_without_eviction(replay):
    _, trace = ToyTask().examples(1, HELD_OUT_SEED)[0]
    response = render_assistant(trace) + "<|im_end|>"
    prompt_ids, response_ids = replay.prompt_ids(trace.prompt), replay.response_ids(response)
    evicting = replay.measure(prompt_ids, response_ids, MEMENTO)
    plain = replay.measure(prompt_ids, response_ids, MEMENTO.replace(keep_last_n_blocks=-1))
    assert evicting.response_tokens == plain.response_tokens == len(response_ids) - 1  # the final <|im_end|>
    assert plain.peak_tokens == len(prompt_ids) + len(response_ids) - 1
    assert evicting.peak_tokens < 0.5 * plain.peak_tokens and evicting.blocks == len(trace.blocks) == 5
    assert replay.geometry.bytes_per_token == 2 * 4 * 2 * 32 * 4  # K,V x 4 layers x 2 KV heads x 32 dims x fp32
    assert evicting.peak_bytes == evicting.peak_tokens * replay.geometry.bytes_per_token
    direct = simulate(
        prompt_ids + response_ids[:-1], replay.special_ids, replay.geometry, MEMENTO, prompt_length=len(prompt_ids)
    )
    assert (evicting.peak_tokens, evicting.auc_gb_ktok) == (direct.peak_tokens, direct.auc_gb_ktok)


def test_a_tokenizer_without_memento_tokens_replays_as_plain_text():
    replay = KVReplay(build_tokenizer(with_memento_tokens=False), KVGeometry.preset("qwen3-8b"))
    assert replay.special_ids == INERT_SPECIAL_IDS
    ids = replay.response_ids("The answer is 42 so we add")
    figures = replay.measure([1, 2, 3], ids, MEMENTO)
    assert figures.peak_tokens == 3 + len(ids) and figures.blocks == 0


def test_geometry_sources():
    assert resolve_geometry(preset="qwen3-32b").name == "qwen3-32b"
    assert resolve_geometry(model_config=CHECKPOINT / "config.json").num_layers == 4
    with pytest.raises(ValueError, match="pass --model-config DIR or --geometry PRESET"):
        resolve_geometry(model="served-model-name")

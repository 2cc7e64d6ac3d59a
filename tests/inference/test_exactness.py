"""`.score()` through the evicting cache equals one forward with the dense `visibility_mask`."""

from __future__ import annotations

import random

import pytest
import torch

from memento.attention import analyze, visibility_mask
from memento.config import MementoConfig
from memento.inference import MementoGenerator
from tests.models import SPECIAL_IDS, dense_logits, memento_sequence, tiny_model

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def models():
    return {
        (family, attn): tiny_model(family, attn) for family in ("qwen3", "llama", "phi3") for attn in ("sdpa", "eager")
    }


@pytest.mark.parametrize("family", ["qwen3", "llama", "phi3"])
@pytest.mark.parametrize("mask_delimiters", [False, True])
@pytest.mark.parametrize("keep_last_n_blocks", [-1, 0, 1, 2])
def test_score_equals_dense_mask_forward(models, family, mask_delimiters, keep_last_n_blocks):
    config = MementoConfig(keep_last_n_blocks=keep_last_n_blocks, mask_delimiters=mask_delimiters)
    rng = random.Random(f"{family}{mask_delimiters}{keep_last_n_blocks}")
    for attn in ("sdpa", "eager"):
        model = models[(family, attn)]
        sequence = memento_sequence(rng)
        generator = MementoGenerator(model, None, config, special_ids=SPECIAL_IDS)
        reference = dense_logits(model, sequence, visibility_mask(sequence, SPECIAL_IDS, config))
        scored = generator.score(torch.tensor(sequence))
        assert scored.shape == reference.shape == (len(sequence), model.config.vocab_size)
        assert (scored - reference).abs().max() < TOLERANCE
        # the prompt's markers are ignored: evictions are the assistant's blocks only (5 of them)
        expected_evictions = 0 if keep_last_n_blocks < 0 else 5 - keep_last_n_blocks
        assert len(generator.last_result.evictions) == expected_evictions
        if keep_last_n_blocks >= 0:  # the test can fail: plain causal attention differs
            causal = dense_logits(model, sequence, torch.ones(len(sequence), len(sequence), dtype=torch.bool).tril())
            assert (causal - reference).abs().max() > 100 * TOLERANCE


@pytest.mark.parametrize("chunk_size", [3, 16, 1000])
def test_chunked_score_equals_token_by_token(models, chunk_size):
    config = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)
    sequence = memento_sequence(random.Random(chunk_size), blocks=6)
    generator = MementoGenerator(models[("qwen3", "sdpa")], None, config, special_ids=SPECIAL_IDS)
    one_by_one = generator.score(sequence)
    assert (generator.score([sequence], chunk_size=chunk_size) - one_by_one).abs().max() < TOLERANCE


@pytest.mark.parametrize(
    "options",
    [
        {"keep_last_block_for_answer": True},
        {"compact_on_summary_end": False},
        {"require_assistant_section": False},
        {"enable": False},
    ],
    ids=lambda o: next(iter(o)),
)
def test_other_options_are_exact(models, options):
    config = MementoConfig.from_dict({"enable": True, "mask_delimiters": False, **options})
    sequence = memento_sequence(random.Random(7))
    generator = MementoGenerator(models[("llama", "sdpa")], None, config, special_ids=SPECIAL_IDS)
    reference = dense_logits(models[("llama", "sdpa")], sequence, visibility_mask(sequence, SPECIAL_IDS, config))
    assert (generator.score(sequence) - reference).abs().max() < TOLERANCE
    if options == {"compact_on_summary_end": False}:
        assert generator.last_cache.physical_length == len(sequence)  # never evicted, as the authors'


def test_restart_mode_recomputes_mementos_without_their_block(models):
    model = models[("qwen3", "eager")]
    config = MementoConfig(mask_delimiters=False, restart_mode=True)
    sequence = memento_sequence(random.Random(3))
    generator = MementoGenerator(model, None, config, special_ids=SPECIAL_IDS)
    scored = generator.score(sequence)
    # every row outside a memento follows the recomputed stream: the restart mask, block and delimiters hidden
    restart = dense_logits(model, sequence, visibility_mask(sequence, SPECIAL_IDS, config))
    layout = analyze(sequence, SPECIAL_IDS, config)
    inside = {q for block in layout.blocks if block.hidden_after is not None for q in block.summary_range}
    outside = [q for q in range(len(sequence)) if q not in inside]
    assert (scored[outside] - restart[outside]).abs().max() < TOLERANCE
    assert len(generator.last_result.evictions) == 5
    # and it is a different computation from keeping the mementos' first KV (the dual stream)
    kept_memento_kv = config.replace(restart_mode=False, mask_delimiters=True)
    dual = dense_logits(model, sequence, visibility_mask(sequence, SPECIAL_IDS, kept_memento_kv))
    assert (scored[outside] - dual[outside]).abs().max() > 100 * TOLERANCE


def test_sliding_window_layers_keep_working():
    model = tiny_model("qwen3", "sdpa", use_sliding_window=True, sliding_window=6, max_window_layers=1)
    assert set(model.config.layer_types) == {"full_attention", "sliding_attention"}
    config = MementoConfig(mask_delimiters=False)
    sequence = memento_sequence(random.Random(11))
    generator = MementoGenerator(model, None, config, special_ids=SPECIAL_IDS)
    memento = visibility_mask(sequence, SPECIAL_IDS, config)
    positions = torch.arange(len(sequence))
    window = memento & (positions[None, :] > positions[:, None] - 6)
    masks = {}
    for kind, mask in (("full_attention", memento), ("sliding_attention", window)):
        masks[kind] = torch.zeros(1, 1, *mask.shape).masked_fill_(~mask, torch.finfo(torch.float32).min)
    with torch.no_grad():
        reference = model(
            input_ids=torch.tensor([sequence]), attention_mask=masks, position_ids=positions[None]
        ).logits[0]
    assert (generator.score(sequence, chunk_size=5) - reference).abs().max() < TOLERANCE

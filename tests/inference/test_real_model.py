"""Exactness on real pretrained weights: SmolLM2-135M-Instruct (from its GGUF), fp32, after add_memento_tokens.

`.score()` through the evicting cache equals one forward with the dense `visibility_mask` at every
position for every memento option of tests/inference/test_exactness.py (keep_last_n_blocks x
mask_delimiters under sdpa, two of them under eager, the other options, token by token under both),
and batched greedy generation equals generating each prompt alone. The text is the authors' real
code trace, shortened.
"""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessor

from memento.attention import visibility_mask
from memento.config import MementoConfig
from memento.format import Block, SpecialIds, Trace, load_traces, render_chat
from memento.inference import MementoGenerator
from memento.inference.loading import load_causal_lm, load_tokenizer
from memento.training import add_memento_tokens
from tests.conftest import EXAMPLES
from tests.models import dense_logits

pytestmark = pytest.mark.slow
TOLERANCE = 1e-4
CHUNK = 8  # tokens per forward in the grid; the paper's setting also runs token by token (chunk 1)


@pytest.fixture(scope="module")
def smollm2(smollm2_checkpoint):
    model = load_causal_lm(smollm2_checkpoint, dtype=torch.float32, attn_implementation="sdpa").eval()
    tokenizer = load_tokenizer(smollm2_checkpoint)
    add_memento_tokens(model, tokenizer)
    return model, tokenizer, SpecialIds.from_tokenizer(tokenizer)


@pytest.fixture(scope="module")
def sequence(smollm2) -> list[int]:
    """Real text with 4 blocks, and memento markers inside the prompt that the rule must ignore."""
    _, tokenizer, special_ids = smollm2
    ((_, trace),) = load_traces(EXAMPLES / "memento_trace_code.json")
    prompt = trace.prompt[:100] + " <|block_start|> aside <|block_end|><|summary_start|> note <|summary_end|>"
    short = Trace(prompt, [Block(b.reasoning[:90], (b.memento or "")[:30]) for b in trace.blocks], trace.answer[:30])
    ids = tokenizer.encode(render_chat(short), add_special_tokens=False)
    assert ids.count(special_ids.summary_end) == 5 and special_ids.assistant_header is not None
    return ids


def _check(model, tokenizer, special_ids, ids, config, *, chunk_size=CHUNK, expected_evictions=None):
    generator = MementoGenerator(model, tokenizer, config)
    reference = dense_logits(model, ids, visibility_mask(ids, special_ids, config))
    scored = generator.score(ids, chunk_size=chunk_size)
    assert scored.shape == reference.shape == (len(ids), len(tokenizer))
    error = (scored - reference).abs().max().item()
    assert error < TOLERANCE, error
    if expected_evictions is not None:
        assert len(generator.last_result.evictions) == expected_evictions
    return reference


GRID = [(keep, delimiters, "sdpa") for keep in (-1, 0, 1, 2) for delimiters in (False, True)]
GRID += [(1, True, "eager"), (2, False, "eager")]  # eager adds the mask to the scores: a different code path


@pytest.mark.parametrize(("keep_last_n_blocks", "mask_delimiters", "attention"), GRID)
def test_score_equals_dense_mask_forward(smollm2, sequence, attention, mask_delimiters, keep_last_n_blocks):
    model, tokenizer, special_ids = smollm2
    model.set_attn_implementation(attention)
    try:
        config = MementoConfig(keep_last_n_blocks=keep_last_n_blocks, mask_delimiters=mask_delimiters)
        evictions = 0 if keep_last_n_blocks < 0 else 4 - keep_last_n_blocks  # the prompt's block is not one
        _check(model, tokenizer, special_ids, sequence, config, expected_evictions=evictions)
    finally:
        model.set_attn_implementation("sdpa")


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_token_by_token_decoding_path(smollm2, sequence, attention):
    model, tokenizer, special_ids = smollm2
    model.set_attn_implementation(attention)
    try:
        config = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)
        reference = _check(model, tokenizer, special_ids, sequence, config, chunk_size=1, expected_evictions=4)
        causal = dense_logits(model, sequence, torch.ones(len(sequence), len(sequence), dtype=torch.bool).tril())
        assert (causal - reference).abs().max() > 100 * TOLERANCE  # the check can fail: eviction changes logits
    finally:
        model.set_attn_implementation("sdpa")


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
def test_other_options_are_exact(smollm2, sequence, options):
    model, tokenizer, special_ids = smollm2
    _check(model, tokenizer, special_ids, sequence, MementoConfig.from_dict({"mask_delimiters": False, **options}))


class ForcedBlocks(LogitsProcessor):
    """Each row writes blocks of its own length (3 + its prompt length mod 4, so rows evict at different steps),
    each closed by a 2-token memento; the model's argmax picks every text token (special tokens excluded), so
    attention, and eviction, shape the text."""

    def __init__(self, special_ids: SpecialIds, text: range) -> None:
        self.ids = special_ids
        self.text = slice(text.start, text.stop)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        bs, be, ss, se = self.ids.memento_ids
        forced = torch.full_like(scores, torch.finfo(scores.dtype).min)
        for row, ids in enumerate(input_ids.tolist()):
            last = {t: max((i for i, x in enumerate(ids) if x == t), default=-1) for t in (bs, be, ss, se)}
            first = ids.index(bs) if bs in ids else len(ids)
            position, choice = len(ids), None
            if last[bs] > max(last[be], last[se]) and position - last[bs] - 1 >= 3 + first % 4:
                choice = be
            elif last[be] == position - 1:
                choice = ss
            elif last[ss] > last[se] and position - last[ss] - 1 >= 2:
                choice = se
            elif last[se] == position - 1 or max(last.values()) < 0:
                choice = bs
            if choice is None:
                forced[row, self.text] = scores[row, self.text]
            else:
                forced[row, choice] = 0.0
        return forced


def test_batched_greedy_generation_equals_one_at_a_time(smollm2):
    model, tokenizer, special_ids = smollm2
    prompts = ["What is 12 * 7?", "Name three prime numbers.", "Explain why the sky is blue in one sentence."]
    generator = MementoGenerator(model, tokenizer, MementoConfig(keep_last_n_blocks=0, mask_delimiters=False))
    processor = ForcedBlocks(special_ids, text=range(17, 49152))  # SmolLM2's vocabulary less its 17 control tokens
    batched = generator.generate(prompts, max_new_tokens=40, logits_processor=[processor])
    alone = [generator.generate([p], max_new_tokens=40, logits_processor=[processor])[0] for p in prompts]
    assert len({len(r.prompt_ids) % 4 for r in batched}) > 1  # rows evict at different steps
    for together, single in zip(batched, alone, strict=True):
        assert together.token_ids == single.token_ids
        assert [(e.step, e.span) for e in together.evictions] == [(e.step, e.span) for e in single.evictions]
        assert len(together.evictions) >= 3  # blocks really closed and were evicted

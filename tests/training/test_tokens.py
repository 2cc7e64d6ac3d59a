from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen3Config

from memento.format import MEMENTO_TOKENS
from memento.training import SEED_WORDS, add_memento_tokens
from tests.conftest import build_tokenizer


def _model(vocab: int, tied: bool):
    config = Qwen3Config(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        tie_word_embeddings=tied,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config)


def _word_mean(tokenizer, weight, words):
    return torch.stack([weight[tokenizer.encode(w, add_special_tokens=False)].mean(0) for w in words]).mean(0)


@pytest.mark.parametrize("tied", [False, True])
def test_new_rows_are_the_mean_of_their_words_plus_noise(tied):
    tokenizer = build_tokenizer(with_memento_tokens=False)
    model = _model(len(tokenizer), tied)
    before_in = model.get_input_embeddings().weight.detach().clone()
    before_out = model.get_output_embeddings().weight.detach().clone()
    ids = add_memento_tokens(model, tokenizer, noise_std=0.01, seed=0)
    assert ids == [tokenizer.convert_tokens_to_ids(t) for t in MEMENTO_TOKENS]
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) == before_in.shape[0] + 4
    for token, token_id in zip(MEMENTO_TOKENS, ids, strict=True):
        words = SEED_WORDS[token]
        deviation = model.get_input_embeddings().weight[token_id].detach() - _word_mean(tokenizer, before_in, words)
        assert 0 < deviation.abs().max() < 0.05 and deviation.std().item() == pytest.approx(0.01, rel=0.5)
        if not tied:
            out = model.get_output_embeddings().weight[token_id].detach() - _word_mean(tokenizer, before_out, words)
            assert out.abs().max() < 0.05
    # special tokens: one id each, and kept whole by the tokenizer
    assert tokenizer.encode("x<|block_start|>y", add_special_tokens=False).count(ids[0]) == 1
    assert torch.equal(model.get_input_embeddings().weight[: before_in.shape[0]], before_in)


def test_calling_twice_changes_nothing():
    tokenizer = build_tokenizer(with_memento_tokens=False)
    model = _model(len(tokenizer), tied=False)
    first = add_memento_tokens(model, tokenizer)
    weights = model.get_input_embeddings().weight.detach().clone()
    assert add_memento_tokens(model, tokenizer, seed=5) == first
    assert torch.equal(model.get_input_embeddings().weight, weights) and len(tokenizer) == weights.shape[0]


def test_all_seed_words_missing_is_an_error():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    with pytest.raises(ValueError, match="none of the seed words"):
        add_memento_tokens(_model(2, tied=False), tokenizer)

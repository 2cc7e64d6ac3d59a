from __future__ import annotations

from memento.counting import ApproximateTokenizer, encode_trace, is_approximate, load_tokenizer
from memento.format import BLOCK_START, SUMMARY_END, Block, SpecialIds, Trace, render_chat


def test_approximate_tokenizer_is_lossless_and_keeps_markers_whole():
    tokenizer = ApproximateTokenizer()
    text = f"{BLOCK_START}Let x = 12345 so\n\n x+1{SUMMARY_END}"
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert ids[0] == tokenizer.convert_tokens_to_ids(BLOCK_START)
    assert ids[-1] == tokenizer.convert_tokens_to_ids(SUMMARY_END)
    assert len(tokenizer.encode("abcdefgh")) == 2  # four characters a piece
    assert is_approximate(tokenizer)


def test_encode_trace_prompt_ends_at_assistant_header(tokenizer_dir):
    trace = Trace("what is 3 and 4", [Block("add 3 and 4", "7")], answer="7")
    for tokenizer in (load_tokenizer(None), load_tokenizer(tokenizer_dir)):
        encoded = encode_trace(trace, tokenizer)
        header = tokenizer.encode("<|im_start|>assistant", add_special_tokens=False)
        assert encoded.token_ids[encoded.prompt_length - len(header) : encoded.prompt_length] == header
        assert tokenizer.decode(encoded.token_ids) == render_chat(trace)
        assert encoded.special_ids == SpecialIds.from_tokenizer(tokenizer)


def test_load_tokenizer_adds_missing_memento_tokens(tmp_path):
    from tests.conftest import build_tokenizer

    build_tokenizer(with_memento_tokens=False).save_pretrained(tmp_path)
    tokenizer = load_tokenizer(tmp_path)
    assert len(tokenizer.encode(BLOCK_START, add_special_tokens=False)) == 1
    assert not is_approximate(tokenizer)

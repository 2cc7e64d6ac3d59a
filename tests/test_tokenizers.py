"""The real Qwen3 tokenizer built offline: ids against published ones, tiktoken, and the authors' traces."""

from __future__ import annotations

import json
import unicodedata

import pytest

from memento import tokenizers
from memento.config import MementoConfig
from memento.format import MEMENTO_TOKENS, load_traces, render_chat
from memento.kv import KVGeometry
from memento.kv_report import compare_traces
from tests.conftest import REAL_TRACES

pytestmark = pytest.mark.slow  # the first build converts 151,643 ranks (~10-15 s on 2 cores)


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("memento-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMENTO_CACHE", str(cache))
        tokenizers.qwen3_tokenizer.cache_clear()
        yield tokenizers.qwen3_tokenizer()
        tokenizers.qwen3_tokenizer.cache_clear()


def test_special_tokens_in_qwen3_order(qwen3):
    names = [name for name, _ in tokenizers.QWEN3_ADDED_TOKENS]
    assert len(names) == 26
    assert qwen3.convert_tokens_to_ids(names) == list(range(151643, 151669))
    assert qwen3.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [151643, 151644, 151645]
    assert qwen3.convert_tokens_to_ids(["<think>", "</think>"]) == [151667, 151668]
    assert qwen3.convert_tokens_to_ids(list(MEMENTO_TOKENS)) == [151669, 151670, 151671, 151672]
    assert len(qwen3) == 151673
    assert (qwen3.eos_token, qwen3.pad_token, qwen3.bos_token) == ("<|im_end|>", "<|endoftext|>", None)


@pytest.mark.parametrize(
    ("text", "ids"),
    [  # ids published alongside Qwen2/2.5/3 tokenizers (see the report of this change for where)
        ("<|im_start|>hello<|im_end|>", [151644, 14990, 151645]),
        (" hello sir. How are you Edward?", [23811, 27048, 13, 2585, 525, 498, 21891, 30]),
        ("hello world", [14990, 1879]),
        ("hello  ", [14990, 256]),
        ("I'm", [40, 2776]),
        ("hello\n\n", [14990, 271]),
        (" \n", [715]),
        ("hello\tworld", [14990, 76508]),
        ("😊", [144236]),
        ("杭州是个好地方", [104130, 104104, 52801, 100371]),
    ],
)
def test_known_ids(qwen3, text, ids):
    assert qwen3.encode(text, add_special_tokens=False) == ids
    assert qwen3.decode(ids) == text


def test_real_traces_match_tiktoken_id_for_id(qwen3):
    """tiktoken's own BPE over the same ranks and regex (with Qwen's NFC step) is an independent reference."""
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import load_tiktoken_bpe

    specials = {name: 151643 + i for i, (name, _) in enumerate(tokenizers.QWEN3_ADDED_TOKENS)}
    specials.update({name: 151669 + i for i, name in enumerate(MEMENTO_TOKENS)})
    reference = tiktoken.Encoding(
        "qwen3",
        pat_str=tokenizers.QWEN_PRETOKENIZE_REGEX,
        mergeable_ranks=load_tiktoken_bpe(str(tokenizers.qwen_ranks_file())),
        special_tokens=specials,
    )
    for path in REAL_TRACES:
        ((_, trace),) = load_traces(path)
        text = render_chat(trace)
        expected = reference.encode(unicodedata.normalize("NFC", text), allowed_special="all")
        assert qwen3.encode(text, add_special_tokens=False) == expected, path.name


def test_kv_counts_real_traces_exactly(qwen3):
    """`memento kv` with the exact tokenizer: each block's and memento's tokens are the text's Qwen3 tokens,
    and their characters are the authors' `char_len`. The authors' `approx_tokens` is `char_len // 4`, not a
    tokenizer count, so it is checked as such (the exact counts differ from it)."""
    comparisons = compare_traces(
        REAL_TRACES, qwen3, KVGeometry.preset("qwen3-32b"), MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)
    )
    assert not comparisons.approximate_tokens
    differing = 0
    for path, comparison in zip(REAL_TRACES, comparisons.traces, strict=True):
        record = json.loads(path.read_text())
        blocks = [s for s in record["segments"] if s["type"] == "block"]
        summaries = [s for s in record["segments"] if s["type"] == "summary"]
        assert len(comparison.memento.blocks) == len(blocks) == len(summaries)
        for measured, block, summary in zip(comparison.memento.blocks, blocks, summaries, strict=True):
            assert measured.block_tokens == len(qwen3.encode(block["text"], add_special_tokens=False))
            assert measured.memento_tokens == len(qwen3.encode(summary["text"], add_special_tokens=False))
            assert (measured.block_chars, measured.memento_chars) == (block["char_len"], summary["char_len"])
            for segment in (block, summary):
                assert segment["approx_tokens"] == segment["char_len"] // 4
            differing += measured.block_tokens != block["approx_tokens"]
        assert comparison.vanilla.total_tokens == len(qwen3.encode(render_chat(load_traces(path)[0][1])))
    assert differing > 0


def test_second_call_reads_the_cache(qwen3, monkeypatch):
    def no_rebuild(_ranks_file):
        raise AssertionError("the cached tokenizer.json should have been read")

    monkeypatch.setattr(tokenizers, "build_qwen3_backend", no_rebuild)
    tokenizers.qwen3_tokenizer.cache_clear()  # drop the in-memory copy; the disk cache stays
    again = tokenizers.qwen3_tokenizer()
    assert again.encode("hello world<|block_end|>") == [14990, 1879, 151670]


def test_exact_tokenizer_only_for_qwen3(qwen3):
    assert tokenizers.exact_tokenizer_for("qwen3-8b") is not None
    assert tokenizers.exact_tokenizer_for("phi-4-reasoning") is None

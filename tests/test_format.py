from __future__ import annotations

import json

import pytest

from memento.format import (
    BLOCK_END,
    BLOCK_START,
    SUMMARY_END,
    SUMMARY_START,
    THINK_END,
    THINK_START,
    Block,
    SpecialIds,
    Trace,
    TraceFormatError,
    load_traces,
    parse_text,
    render_assistant,
    render_chat,
    trace_from_segments,
    trace_to_segments,
)
from tests.conftest import REAL_TRACES


def _text(*parts: str) -> str:
    return "".join(parts)


@pytest.mark.parametrize("path", REAL_TRACES, ids=lambda p: p.name)
def test_real_traces_parse_render_parse_lossless(path):
    record = json.loads(path.read_text())
    ((name, trace),) = load_traces(path)
    assert name == path.name
    assert len(trace.blocks) == sum(s["type"] == "block" for s in record["segments"])
    assert [b.memento for b in trace.blocks] == [s["text"] for s in record["segments"] if s["type"] == "summary"]
    assert trace.answer == record["segments"][-1]["text"]
    assert not trace.is_open
    # text forms
    assert parse_text(render_chat(trace)) == trace
    reparsed = parse_text(render_assistant(trace))
    assert reparsed.blocks == trace.blocks and reparsed.answer == trace.answer
    # authors' JSON form, metadata (problem_source, extracted answer) kept
    again = trace_to_segments(trace)
    assert trace_from_segments(again) == trace
    assert again["answer"] == record["answer"] and again["problem_source"] == record["problem_source"]
    assert [s["text"] for s in again["segments"]] == [s["text"] for s in record["segments"]]


def test_render_layout():
    trace = Trace("2+2?", [Block("two plus two", "4"), Block("check")], answer="4")
    assert render_assistant(trace) == (
        f"{THINK_START}\n{BLOCK_START}two plus two{BLOCK_END}\n{SUMMARY_START}4{SUMMARY_END}\n"
        f"{BLOCK_START}check{BLOCK_END}\n{THINK_END}\n\n4"
    )
    assert render_chat(trace).startswith("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>")
    assert render_chat(trace).endswith("<|im_end|>\n")


@pytest.mark.parametrize(
    ("text", "expected_block"),
    [
        (f"{THINK_START}{BLOCK_START}half a tho", Block("half a tho", reasoning_closed=False)),
        (f"{THINK_START}{BLOCK_START}r{BLOCK_END}\n", Block("r")),
        (
            f"{THINK_START}{BLOCK_START}r{BLOCK_END}{SUMMARY_START}mem",
            Block("r", "mem", memento_closed=False),
        ),
        (f"{THINK_START}{BLOCK_START}r{BLOCK_END}{SUMMARY_START}m{SUMMARY_END}", Block("r", "m")),
    ],
)
def test_open_traces_are_valid(text, expected_block):
    trace = parse_text(text)
    assert trace.is_open and trace.answer is None
    assert trace.blocks[-1] == expected_block
    assert parse_text(render_assistant(trace)) == trace


def test_open_chat_prompt_and_missing_think():
    trace = parse_text(f"<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n{BLOCK_START}abc")
    assert trace.prompt == "Q?" and trace.blocks == [Block("abc", reasoning_closed=False)]


def _offset_of_error(text: str) -> TraceFormatError:
    with pytest.raises(TraceFormatError) as caught:
        parse_text(text, source="t.txt")
    return caught.value


@pytest.mark.parametrize(
    ("text", "bad", "expected"),
    [
        # summary with no block
        (_text(THINK_START, SUMMARY_START, "m", SUMMARY_END), SUMMARY_START, BLOCK_START),
        # nested block
        (_text(THINK_START, BLOCK_START, "a", BLOCK_START, "b"), BLOCK_START + "b", BLOCK_END),
        # block_end without block_start
        (_text(THINK_START, "  ", BLOCK_END), BLOCK_END, BLOCK_START),
        # </think> inside a block
        (_text(THINK_START, BLOCK_START, "abc", THINK_END, "ans"), THINK_END, BLOCK_END),
        # </think> inside a memento
        (
            _text(THINK_START, BLOCK_START, "a", BLOCK_END, SUMMARY_START, "m", THINK_END),
            THINK_END,
            SUMMARY_END,
        ),
        # summary_end without summary_start
        (_text(THINK_START, BLOCK_START, "a", BLOCK_END, SUMMARY_END), SUMMARY_END, SUMMARY_START),
        # two blocks without a memento between them
        (
            _text(THINK_START, BLOCK_START, "a", BLOCK_END, "\n", BLOCK_START, "b"),
            BLOCK_START + "b",
            SUMMARY_START,
        ),
        # text between blocks
        (
            _text(THINK_START, BLOCK_START, "a", BLOCK_END, SUMMARY_START, "m", SUMMARY_END, " stray"),
            "stray",
            BLOCK_START,
        ),
        # memento markers in the answer
        (
            _text(THINK_START, BLOCK_START, "a", BLOCK_END, THINK_END, "x", BLOCK_START),
            BLOCK_START,
            "plain answer",
        ),
        # a second <think>
        (_text(THINK_START, BLOCK_START, "a", BLOCK_END, THINK_START), THINK_START, "or"),
    ],
    ids=[
        "summary-no-block",
        "nested-block",
        "end-without-start",
        "think-end-in-block",
        "think-end-in-memento",
        "summary-end-without-start",
        "block-without-memento",
        "text-between-blocks",
        "marker-in-answer",
        "second-think",
    ],
)
def test_malformed_text_names_offset(text, bad, expected):
    error = _offset_of_error(text)
    assert error.offset == text.rindex(bad)
    assert expected in (error.expected or "")
    assert f"t.txt: offset {error.offset}" in str(error)


def test_malformed_offset_counts_from_start_of_conversation():
    prefix = "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    text = prefix + _text(THINK_START, SUMMARY_START)
    assert _offset_of_error(text).offset == text.index(SUMMARY_START)


@pytest.mark.parametrize(
    ("segments", "index", "expected"),
    [
        ([{"type": "summary", "text": "m"}], 0, "'block'"),
        ([{"type": "block", "text": "a"}, {"type": "block", "text": "b"}], 1, "'summary'"),
        (
            [{"type": "block", "text": "a"}, {"type": "memo", "text": "b"}],
            1,
            "'block', 'summary' or 'answer'",
        ),
        ([{"type": "answer", "text": "a"}, {"type": "block", "text": "b"}], 1, "nothing"),
        ([{"type": "block", "text": 3}], 0, "text"),
    ],
)
def test_malformed_segments_name_index(segments, index, expected):
    with pytest.raises(TraceFormatError) as caught:
        trace_from_segments({"problem": "p", "segments": segments}, source="f.json")
    assert caught.value.segment == index
    assert expected in caught.value.expected
    assert f"f.json: segments[{index}]" in str(caught.value)


def test_jsonl_errors_name_line(tmp_path):
    path = tmp_path / "traces.jsonl"
    good = {"problem": "p", "segments": [{"type": "block", "text": "a"}, {"type": "summary", "text": "m"}]}
    path.write_text(json.dumps(good) + "\n\n" + '{"problem": "p", "segm\n')
    with pytest.raises(TraceFormatError, match=r"traces.jsonl:3: invalid JSON"):
        load_traces(path)
    path.write_text(
        json.dumps(good) + "\n" + json.dumps({"text": f"{BLOCK_START}x{BLOCK_END}{SUMMARY_START}y{SUMMARY_END}"}) + "\n"
    )
    names = [name for name, _ in load_traces(path)]
    assert names == ["traces.jsonl:1", "traces.jsonl:2"]


def test_special_ids_from_tokenizer(tokenizer):
    ids = SpecialIds.from_tokenizer(tokenizer)
    assert ids.memento_ids == tuple(
        tokenizer.convert_tokens_to_ids(t) for t in (BLOCK_START, BLOCK_END, SUMMARY_START, SUMMARY_END)
    )
    assert ids.think_start == tokenizer.convert_tokens_to_ids(THINK_START)
    assert ids.assistant_header == tuple(tokenizer.encode("<|im_start|>assistant", add_special_tokens=False))
    assert ids.assistant_header[0] == ids.im_start
    by_keyword = SpecialIds(block_start=1, block_end=2, summary_start=3, summary_end=4)
    assert by_keyword.think_start is None and by_keyword.assistant_header is None


def test_special_ids_missing_tokens_is_clear():
    from tests.conftest import build_tokenizer

    with pytest.raises(ValueError, match="lacks the memento tokens"):
        SpecialIds.from_tokenizer(build_tokenizer(with_memento_tokens=False))
    with pytest.raises(ValueError, match="distinct"):
        SpecialIds(block_start=1, block_end=1, summary_start=3, summary_end=4)

from __future__ import annotations

import json
import re

from memento.data.split import split_sentences
from memento.format import load_traces, read_jsonl
from tests.conftest import EXAMPLES


def sentences(text: str) -> list[str]:
    result = split_sentences(text)
    assert "".join(result.sentences) == text  # spans cover the text exactly
    return [s.strip() for s in result.sentences]


def test_plain_sentences_and_abbreviations():
    text = "First we add the two numbers together. Then we check e.g. the sign of it. Dr. Smith agrees with this."
    assert sentences(text) == [
        "First we add the two numbers together.",
        "Then we check e.g. the sign of it.",
        "Dr. Smith agrees with this.",
    ]


def test_math_code_parentheses_and_lists_stay_whole():
    text = (
        "We know that $x. Y$ holds here for all values. Consider the following display now:\n"
        "$$a = b. C = d$$\nThat settles the first part of it. "
        "Next (see the note. It matters a lot) we continue with the proof.\n\n"
        "```python\nx = 1. \nprint(x). Done\n```\nThe code prints the value one.\n\n"
        "- item one. Still item one\n- item two. Still two\n\nAfter the list we stop here."
    )
    parts = sentences(text)
    assert any("$x. Y$" in p for p in parts)
    assert any("$$a = b. C = d$$" in p for p in parts)
    assert any("(see the note. It matters a lot)" in p for p in parts)
    assert any("print(x). Done" in p for p in parts)
    assert any("- item one. Still item one\n- item two. Still two" in p for p in parts)


def test_merges_colons_continuations_and_fragments():
    text = (
        "We need the following quantity: the sum of squares is large. Therefore the bound holds for all n. Ok. "
        "Now the next case is different entirely."
    )
    parts = sentences(text)
    assert (
        parts[0]
        == "We need the following quantity: the sum of squares is large. Therefore the bound holds for all n. Ok."
    )
    assert parts[1] == "Now the next case is different entirely."


def test_consecutive_math_lines_merge():
    text = (
        "Compute the value step by step now.\n\nx = 3 + 4 = 7\n\ny = 7 * 2 = 14\n\nSo both values are known to us now."
    )
    parts = sentences(text)
    assert "x = 3 + 4 = 7\n\ny = 7 * 2 = 14" in parts[1]


def test_real_trace_reports_candidate_boundaries():
    record = json.loads((EXAMPLES / "openthoughts_example_trace.jsonl").read_text().splitlines()[0])
    cot = record["cot"].removeprefix("<think>").split("</think>")[0]
    result = split_sentences(cot)
    assert "".join(result.sentences) == cot
    assert 100 < result.candidate_boundaries < len(cot) / 40


def test_a_list_item_does_not_swallow_an_opening_display():
    text = (
        "Let me write down what I know:\n- The radius is 3.\n- Area formula: $$\nA = r s $$\n"
        "Now we know the area is 72, so the semiperimeter is 24. The legs are equal, so each leg is 12.\n"
        "- Code: ```\nx = 1. y = 2\n```\nThen we print the result and we are done with the code part."
    )
    parts = sentences(text)
    assert any("$$\nA = r s $$" in p for p in parts)
    assert "The legs are equal, so each leg is 12." in parts
    assert any("```\nx = 1. y = 2\n```" in p for p in parts)
    assert parts[-1] == "Then we print the result and we are done with the code part."


def test_an_unclosed_display_stops_at_the_paragraph():
    text = "We start with $$ x = 1 and forget to close it.\n\nThe next paragraph is prose. It has two sentences."
    parts = sentences(text)
    assert parts[-2:] == ["The next paragraph is prose.", "It has two sentences."]


DISPLAY = re.compile(r"```.*?```|\$\$.*?\$\$|\\\[.*?\\\]", re.DOTALL)
LONGEST = 2_000


def real_reasoning_texts() -> list[tuple[str, str]]:
    texts = []
    for path in sorted(EXAMPLES.glob("memento_trace_*.json")):
        for name, trace in load_traces(path):
            texts.append((name, "".join(block.reasoning for block in trace.blocks)))
            texts += [(f"{name} block {i}", block.reasoning) for i, block in enumerate(trace.blocks)]
    for number, record in read_jsonl(EXAMPLES / "openthoughts_example_trace.jsonl"):
        texts.append((f"openthoughts:{number}", record["cot"]))
    return texts


def test_no_long_sentence_on_real_traces_unless_one_whole_display():
    texts = real_reasoning_texts()
    assert len(texts) > 4
    for name, text in texts:
        for sentence in sentences(text):
            if len(sentence) <= LONGEST:
                continue
            displays = DISPLAY.findall(sentence)
            assert len(displays) == 1 and len(sentence) - len(displays[0]) <= LONGEST, (name, len(sentence))

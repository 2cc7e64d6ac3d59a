"""Reading a chat model's reply: mementos, answer, cut-off mementos; lenient about chatter."""

from __future__ import annotations

import pytest

from memento.format import BLOCK_END, BLOCK_START, SUMMARY_END, SUMMARY_START, THINK_END
from memento.prompted.reply import answer_from_final, memento_from_follow_up, read_reply

BS, BE, SS, SE = BLOCK_START, BLOCK_END, SUMMARY_START, SUMMARY_END


@pytest.mark.parametrize(
    ("text", "stopped", "mementos", "answer", "cut"),
    [
        (f"{BS} a + b = 3 {BE}\n{SS} sum is 3 {SE}", True, ("sum is 3",), None, None),
        # servers drop the stop string: a memento open at a stop is complete
        (f"{BS}work{BE}{SS}sum is 3", True, ("sum is 3",), None, None),
        (f"{BS}work{BE}{SS}sum is", False, (), None, "sum is"),
        (f"Sure.{BS}a{BE} then {SS}one{SE} and {SS}two{SE} bye", True, ("one", "two"), None, None),
        (f"{SS}one{BS}next block", True, ("one",), None, None),  # a new block closes the memento
        (f"{SS}  {SE}{SS}kept{SE}", True, ("kept",), None, None),  # empty mementos are no mementos
        (f"{BS}a{BE}{SS}m{SE}{THINK_END}\n\n x = 4 ", True, ("m",), "x = 4", None),
        (f"{THINK_END}", True, (), "", None),
        (f"{SS}m{THINK_END} 12 {SS}not a memento{SE}", True, ("m",), f"12 {SS}not a memento{SE}", None),
        (f"{BS}only reasoning, cut off", False, (), None, None),
        ("", True, (), None, None),
    ],
)
def test_read_reply(text, stopped, mementos, answer, cut):
    reply = read_reply(text, stopped=stopped)
    assert (reply.mementos, reply.answer, reply.cut_memento) == (mementos, answer, cut)


def test_follow_up_memento_with_or_without_markers():
    assert memento_from_follow_up(f"Here: {SS} x = 2 {SE}") == "x = 2"
    assert memento_from_follow_up(f" x = 2, next: check {BE}") == "x = 2, next: check"
    assert memento_from_follow_up("  ") == ""


def test_final_answer_after_the_marker_or_the_whole_reply():
    assert answer_from_final(f"{THINK_END}\n\\boxed{{5}}") == "\\boxed{5}"
    assert answer_from_final("The answer is \\boxed{5}.") == "The answer is \\boxed{5}."
    assert answer_from_final(f"It is 5 {THINK_END}") == "It is 5"

"""Reading what a chat model wrote in one round: its mementos and, if it is done, its answer.

A chat model writes the memento format's markers as plain text. A well-behaved reply is
``<|block_start|> ... <|block_end|> <|summary_start|> memento <|summary_end|>`` or
``</think> answer``; real models add chatter around it, forget delimiters, write several blocks
or stop mid-memento. The reader is lenient: it scans the reply with `memento.format`'s marker
splitter and keeps every non-empty memento it finds and the text after the first ``</think>``
outside a memento.
"""

from __future__ import annotations

from dataclasses import dataclass

from memento.format import BLOCK_START, SUMMARY_END, SUMMARY_START, THINK_END, split_on_markers


@dataclass(frozen=True)
class Reply:
    """One model reply, read.

    Attributes:
        mementos: non-empty mementos closed in the reply, in order.
        answer: text after the answer marker (stripped), or None when the reply has none.
        cut_memento: text of a memento opened but never closed because the reply was cut off
            (None otherwise).
    """

    mementos: tuple[str, ...]
    answer: str | None
    cut_memento: str | None


def read_reply(text: str, *, stopped: bool) -> Reply:
    """Read a reply; `stopped` says the model ended it (finish_reason "stop"), not the token limit.

    A memento still open at the end of a stopped reply is complete: the stop string
    ``<|summary_end|>`` (which servers drop from the text) or the end of turn closed it.
    ``<|block_start|>`` or ``</think>`` inside a memento close it as well.
    """
    mementos: list[str] = []
    memento: list[str] | None = None  # pieces of the memento being read
    answer: str | None = None
    consumed = 0  # characters of `text` read so far

    def close() -> None:
        nonlocal memento
        if memento is not None and "".join(memento).strip():
            mementos.append("".join(memento).strip())
        memento = None

    for piece, is_marker in split_on_markers(text):
        consumed += len(piece)
        if not is_marker:
            if memento is not None:
                memento.append(piece)
            continue
        if piece == SUMMARY_START:
            close()
            memento = []
        elif piece in (SUMMARY_END, BLOCK_START):
            close()
        elif piece == THINK_END:
            close()
            answer = text[consumed:].strip()
            break
    cut_memento = None
    if memento is not None:
        if stopped:
            close()
        else:
            cut_memento = "".join(memento).strip()
    return Reply(tuple(mementos), answer, cut_memento)


def memento_from_follow_up(text: str) -> str:
    """The memento in an answer to the memento request: between the summary markers if the model
    used them, else the whole text without markers (stripped; empty when there is nothing)."""
    reply = read_reply(text, stopped=True)
    if reply.mementos:
        return " ".join(reply.mementos)
    return "".join(piece for piece, is_marker in split_on_markers(text) if not is_marker).strip()


def answer_from_final(text: str) -> str:
    """The answer in a reply to the final-answer request: after the answer marker if written (and
    not empty), else all of the text without markers."""
    reply = read_reply(text, stopped=True)
    if reply.answer:
        return reply.answer
    return "".join(piece for piece, is_marker in split_on_markers(text) if not is_marker).strip()

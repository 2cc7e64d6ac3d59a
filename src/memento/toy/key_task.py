"""The toy task with a key digit that no memento states: the dual-stream experiment at toy scale.

The paper finds that information reaches later tokens two ways: through the memento *text*, and
through the memento's *KV*, computed while its block was still visible; recomputing the mementos
without their blocks (restart mode) loses it. This task makes the second stream the only route.

A problem is the sum task's numbers plus a key digit drawn independently of them. The prompt
shows the numbers only. Block 1's scratch work ends by noting the key as ``z:K`` (the prompt's own
``label:number`` pattern, so that copying it is the same induction the model already does), and
so does every later block (copying it); the mementos are the sum task's (``c=2``: step and running
state); the final answer is ``(state + key) mod 10**digits``, written after ``</think>`` as
``z:7 5+7=12 12-10=2, answer 2`` (restating the key first, as the blocks do).

Why the key can reach later blocks and the answer only through KV computed while a block was visible:

* the key is independent of the numbers, so the prompt (always visible) says nothing about it;
* the memento text is a function of the numbers alone (`mementos`), so it says nothing about it
  either: the same numbers with any of the 10 keys give the same mementos;
* each block is evicted after its memento, so from then on only the KV written while it was
  visible (its ``<|block_end|>`` with ``mask_delimiters=False``, the separator after it, its
  memento's tokens) can carry the key. Block 2 must copy the key from there, and so on up to the answer.

At evaluation the key is forced, not generated: the assistant turn is prefilled with block 1's
reference scratch work through ``z:K`` (`prefill`), so the key is uniform and independent of
everything the model reads later. Noting the key as a block's last token, right before its
``<|block_end|>`` and memento, keeps the first hop (block -> memento KV) short.

Restart mode recomputes each memento without its block and drops the block's delimiters, but keeps
the KV of the newline between ``<|block_end|>`` and ``<|summary_start|>`` (outside both spans), which
was computed while the block was visible: restart is not a perfect cut of the second stream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from memento.format import Block, Trace, render_chat
from memento.toy.task import LABELS, ToyTask

KEYS = 10
"""The key is one decimal digit: chance is 1/KEYS."""
KEY_LABEL = LABELS[-1]
"""The key is noted as ``z:K``: a label no step uses (steps stop before it)."""


@dataclass(frozen=True)
class KeyTask(ToyTask):
    """The sum task plus a key digit no memento states. A problem is ``[*numbers, key]``.

    Six steps make two blocks: block 2's note and the answer's are each one eviction away from block 1.
    """

    steps: int = 6

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steps >= len(LABELS):
            raise ValueError(f"steps must be 1..{len(LABELS) - 1}: the last label, {KEY_LABEL!r}, names the key")

    @staticmethod
    def numbers(problem: list[int]) -> list[int]:
        return problem[:-1]

    @staticmethod
    def key(problem: list[int]) -> int:
        return problem[-1]

    def problem(self, rng: random.Random) -> list[int]:
        return [*super().problem(rng), rng.randrange(KEYS)]

    def prompt(self, problem: list[int]) -> str:
        return super().prompt(self.numbers(problem))

    def answer(self, problem: list[int]) -> int:
        return (super().answer(self.numbers(problem)) + self.key(problem)) % self.modulus

    def mementos(self, problem: list[int]) -> list[str]:
        """The memento texts, computed from the numbers alone: they cannot determine the key."""
        return [block.memento for block in super().trace(self.numbers(problem)).blocks]

    def trace(self, problem: list[int]) -> Trace:
        """The sum task's trace, every block ending with ``z:K``, the key added in the answer."""
        plain = super().trace(self.numbers(problem))
        key, state = self.key(problem), int(plain.answer)
        total, final = state + key, self.answer(problem)
        wrap = f" {total}-{self.modulus}={final}" if total != final else ""
        note = f"{KEY_LABEL}:{key}"
        blocks = [Block(f"{b.reasoning} {note}", b.memento) for b in plain.blocks]
        answer = f"{note} {state}+{key}={total}{wrap}, answer {final}"
        return Trace(prompt=self.prompt(problem), blocks=blocks, answer=answer)

    def prefill(self, problem: list[int]) -> str:
        """The chat text through block 1's ``z:K``: the prompt a run continues, key forced."""
        text, note = render_chat(self.trace(problem)), f" {KEY_LABEL}:{self.key(problem)}"
        return text[: text.index(note) + len(note)]

    def parse_answer(self, text: str) -> int | None:
        """The integer after ``answer`` in the text after ``</think>``, or None."""
        if "</think>" not in text:
            return None
        tail = text.split("</think>", 1)[1].replace("<|im_end|>", "").strip()
        number = tail.rpartition("answer ")[2]
        return int(number) if "answer " in tail and number.isdigit() else None

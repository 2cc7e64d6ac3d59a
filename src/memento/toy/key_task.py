"""The toy task with a key digit that only block 1 holds: the dual-stream experiment at toy scale.

The paper finds that information reaches later tokens two ways: through the memento *text*, and
through the memento's *KV*, computed while its block was still visible; recomputing the mementos
without their blocks (restart mode) loses it. This task makes the second stream the only route.

A problem is the sum task's numbers plus a key digit drawn independently of them. The prompt
shows the numbers only. Block 1 opens with ``key K.``; the mementos are the sum task's (``c=2``:
step and running state); the final answer is ``(state + key) mod 10**digits``, written after
``</think>`` as ``5+7=12 12-10=2, answer 2``.

Why the key can reach the answer only through KV computed while block 1 was visible:

* the key is independent of the numbers, so the prompt (always visible) says nothing about it;
* the memento text is a function of the numbers alone (`mementos`), so it says nothing about it
  either: the same numbers with any of the 10 keys give the same mementos;
* block 1 is evicted after its memento, so after that only the KV written while it was visible
  (its memento's tokens and, with ``mask_delimiters=False``, its ``<|block_end|>``) can carry the
  key. Restart mode recomputes that KV without the block (and drops the delimiters): nothing is
  left that depends on the key, and the answer is right 10% of the time by chance.

At evaluation the key is forced, not generated: the assistant turn is prefilled up to ``key K.``
(`prefill`), so the key is uniform and independent of everything the model can read later.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from memento.format import Block, Trace, render_chat
from memento.toy.task import ToyTask

KEYS = 10
"""The key is one decimal digit: chance is 1/KEYS."""


@dataclass(frozen=True)
class KeyTask(ToyTask):
    """The sum task plus a key digit seen only in block 1. A problem is ``[*numbers, key]``."""

    steps: int = 9

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
        """The sum task's trace, with ``key K.`` opening block 1 and the key added in the answer."""
        plain = super().trace(self.numbers(problem))
        key, state = self.key(problem), int(plain.answer)
        total, final = state + key, self.answer(problem)
        wrap = f" {total}-{self.modulus}={final}" if total != final else ""
        first = plain.blocks[0]
        blocks = [Block(f"key {key}. {first.reasoning}", first.memento), *plain.blocks[1:]]
        return Trace(prompt=self.prompt(problem), blocks=blocks, answer=f"{state}+{key}={total}{wrap}, answer {final}")

    def prefill(self, problem: list[int]) -> str:
        """The chat text up to and including ``key K.``: the prompt a run continues, key forced."""
        text, opening = render_chat(self.trace(problem)), f"key {self.key(problem)}."
        return text[: text.index(opening) + len(opening)]

    def parse_answer(self, text: str) -> int | None:
        """The integer after ``answer`` in the text after ``</think>``, or None."""
        if "</think>" not in text:
            return None
        tail = text.split("</think>", 1)[1].replace("<|im_end|>", "").strip()
        number = tail.rpartition("answer ")[2]
        return int(number) if "answer " in tail and number.isdigit() else None

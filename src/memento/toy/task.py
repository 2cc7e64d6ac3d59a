"""A synthetic reasoning task whose scratch work is long and whose state is short.

Running sum modulo 10**digits over lettered numbers (`a:6 b:6 c:0 ...`). Each step is written
out as scratch work (`d:7 6+7=13 13-10=3, state 3.`); a block covers `steps_per_block` steps and its
memento holds only what the next block needs: the step reached and the running state (`f=3`).
Single-letter labels make each lookup an unambiguous content match. A model trained on
these traces must read each number from the prompt and carry the state through its mementos,
since the scratch work is evicted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from memento.format import Block, Trace

LABELS = "abcdefghijklmnopqrstuvwxyz"
TRAIN_SEED, HELD_OUT_SEED = 0, 1_000_003
"""Seeds of the training problems and of the held-out problems (`memento demo`, the `toy` benchmark)."""


@dataclass(frozen=True)
class ToyTask:
    """Difficulty knobs: numbers per problem, digits per number, steps per block."""

    steps: int = 14
    digits: int = 1
    steps_per_block: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.steps <= len(LABELS) or self.digits < 1 or self.steps_per_block < 1:
            raise ValueError(f"steps must be 1..{len(LABELS)}; digits and steps_per_block must be >= 1")

    @property
    def modulus(self) -> int:
        return 10**self.digits

    def problem(self, rng: random.Random) -> list[int]:
        return [rng.randrange(self.modulus) for _ in range(self.steps)]

    def prompt(self, numbers: list[int]) -> str:
        return f"sum mod {self.modulus}: " + " ".join(f"{LABELS[i]}:{n}" for i, n in enumerate(numbers))

    def answer(self, numbers: list[int]) -> int:
        return sum(numbers) % self.modulus

    def trace(self, numbers: list[int]) -> Trace:
        """The memento trace that solves `numbers`: scratch work in blocks, state in mementos."""
        state, blocks = 0, []
        for start in range(0, len(numbers), self.steps_per_block):
            lines = []
            for step in range(start, min(start + self.steps_per_block, len(numbers))):
                number = numbers[step]
                total = state + number
                state = total % self.modulus
                wrap = f" {total}-{self.modulus}={state}" if total != state else ""
                # label:number repeats the prompt's own pattern, so reading it is a plain copy (an induction head)
                lines.append(f"{LABELS[step]}:{number} {total - number}+{number}={total}{wrap}, state {state}.")
            blocks.append(Block(" ".join(lines), f"{LABELS[step]}={state}"))
        return Trace(prompt=self.prompt(numbers), blocks=blocks, answer=str(state))

    def parse_answer(self, text: str) -> int | None:
        """This task's answer in generated text (`parse_answer`)."""
        return parse_answer(text)

    def examples(self, count: int, seed: int) -> list[tuple[list[int], Trace]]:
        rng = random.Random(seed)
        return [(numbers, self.trace(numbers)) for numbers in (self.problem(rng) for _ in range(count))]


def parse_answer(text: str) -> int | None:
    """The integer after ``</think>`` in generated text, or None."""
    if "</think>" not in text:
        return None
    tail = text.split("</think>", 1)[1].replace("<|im_end|>", "").strip()
    return int(tail) if tail.isdigit() else None

"""Quantity tracking over a story: a task a small pretrained model can learn whose reasoning is long
and whose state must be carried from block to block.

Three people hold some items; then N transfers happen, in order ("Ana gives 3 marbles to Ben."); the
question asks how many one of them holds at the end. The chain of thought is plain prose, one paragraph
per transfer::

    At the start, Ana=12, Ben=5, Tom=7.

    Step 1 of 4: Ana gives 3 to Ben. Ana has 12-3=9, Ben has 5+3=8. After step 1 of 4, Ana=9, Ben=8, Tom=7.

    ...

    After step 4 of 4, Ana=6, Ben=8, Tom=10.

    All 4 transfers are done. At the end, Ben has 8.

Each paragraph ends with the running state and how many transfers are behind, which the next one starts
from, so a block cut at a paragraph needs the state of the block before it: after eviction only that
block's memento can hold it. Difficulty is the number of transfers N, i.e. of paragraphs. (The count
"of N" is written out because a first version without it taught SmolLM2-135M every transfer but not
where to stop: it went on inventing transfers past the last one.)

Problems are generated one seed each (`problem_seed`): training seeds lie below `HELD_OUT_BASE`,
held-out seeds (the ``ledger-N`` benchmark of `memento eval`) at or above it, so the two sets can
never share a problem's generator.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

NAMES = ("Ana", "Ben", "Tom", "Mia", "Sam", "Eva", "Ivy", "Leo", "Zoe", "Kim")
"""One-token names; none is an abbreviation the sentence splitter keeps a full stop after ("Max" is)."""
ITEMS = ("marbles", "coins", "stickers", "cards", "shells", "stamps")
VERBS = ("gives", "hands", "passes")
PEOPLE = 3
START = (5, 15)
"""Inclusive range of the starting counts."""
AMOUNT = (1, 5)
"""Inclusive range of one transfer."""
SEEDS_PER_LEVEL = 1_000_000
HELD_OUT_BASE = 1_000_000_000
"""Seeds of held-out problems start here; training seeds lie below (see `problem_seed`)."""
LEVELS = (4, 8, 12)
"""The difficulties the real-task run trains and evaluates on; the middle one is the headline."""


def problem_seed(difficulty: int, index: int, *, held_out: bool) -> int:
    """The generator seed of problem `index` at `difficulty`: disjoint ranges for training and held-out."""
    if not 0 <= index < SEEDS_PER_LEVEL:
        raise ValueError(f"problem index must be in [0, {SEEDS_PER_LEVEL}), got {index}")
    if not 1 <= difficulty < HELD_OUT_BASE // SEEDS_PER_LEVEL:
        raise ValueError(f"difficulty must be >= 1, got {difficulty}")
    return (HELD_OUT_BASE if held_out else 0) + difficulty * SEEDS_PER_LEVEL + index


@dataclass(frozen=True)
class Transfer:
    giver: str
    receiver: str
    amount: int
    verb: str = "gives"


@dataclass(frozen=True)
class LedgerProblem:
    """One generated problem: who starts with how many `item`, the transfers, whose count is asked."""

    names: tuple[str, ...]
    start: tuple[int, ...]
    item: str
    transfers: tuple[Transfer, ...]
    asked: str
    seed: int

    @property
    def difficulty(self) -> int:
        return len(self.transfers)

    def states(self) -> list[dict[str, int]]:
        """The counts before any transfer, then after each one (`difficulty` + 1 states)."""
        state = dict(zip(self.names, self.start, strict=True))
        states = [dict(state)]
        for t in self.transfers:
            state[t.giver] -= t.amount
            state[t.receiver] += t.amount
            states.append(dict(state))
        return states

    @property
    def answer(self) -> int:
        return self.states()[-1][self.asked]

    def text(self) -> str:
        """The problem in words (the benchmark's `problem`; eval's math template adds the instruction)."""
        holdings = [f"{name} has {count} {self.item}" for name, count in zip(self.names, self.start, strict=True)]
        lines = [f"{', '.join(holdings[:-1])} and {holdings[-1]}. Then {self.difficulty} transfers happen, in order:"]
        lines += [
            f"{number}. {t.giver} {t.verb} {t.amount} {self.item} to {t.receiver}."
            for number, t in enumerate(self.transfers, start=1)
        ]
        lines.append(f"How many {self.item} does {self.asked} have at the end?")
        return "\n".join(lines)

    def reasoning(self) -> str:
        """The chain of thought: the start, one paragraph per transfer ending with the state, the result."""
        states = self.states()
        total = self.difficulty
        paragraphs = [f"At the start, {format_state(states[0])}."]
        for number, (t, before, after) in enumerate(zip(self.transfers, states[:-1], states[1:], strict=True), start=1):
            paragraphs.append(
                f"Step {number} of {total}: {t.giver} gives {t.amount} to {t.receiver}. "
                f"{t.giver} has {before[t.giver]}-{t.amount}={after[t.giver]}, "
                f"{t.receiver} has {before[t.receiver]}+{t.amount}={after[t.receiver]}. "
                f"After step {number} of {total}, {format_state(after)}."
            )
        paragraphs.append(f"All {total} transfers are done. At the end, {self.asked} has {self.answer}.")
        return "\n\n".join(paragraphs)


def format_state(state: dict[str, int]) -> str:
    """``Ana=9, Ben=8, Tom=7``: the form every paragraph ends with."""
    return ", ".join(f"{name}={count}" for name, count in state.items())


def generate(difficulty: int, seed: int) -> LedgerProblem:
    """The problem of `difficulty` transfers drawn from `seed` (a giver always has what it gives)."""
    if difficulty < 1:
        raise ValueError(f"difficulty must be >= 1, got {difficulty}")
    rng = random.Random(seed)
    names = tuple(rng.sample(NAMES, PEOPLE))
    item = rng.choice(ITEMS)
    counts = {name: rng.randint(*START) for name in names}
    start = tuple(counts[name] for name in names)
    transfers = []
    for _ in range(difficulty):
        giver = rng.choice([name for name in names if counts[name] > 0])  # the total never drops: one has some
        receiver = rng.choice([name for name in names if name != giver])
        amount = rng.randint(AMOUNT[0], min(AMOUNT[1], counts[giver]))
        counts[giver] -= amount
        counts[receiver] += amount
        transfers.append(Transfer(giver, receiver, amount, rng.choice(VERBS)))
    return LedgerProblem(names, start, item, tuple(transfers), rng.choice(names), seed)


def problems(difficulty: int, count: int, *, held_out: bool, first: int = 0) -> list[LedgerProblem]:
    """Problems `first` .. `first + count - 1` of `difficulty`, training or held-out."""
    return [generate(difficulty, problem_seed(difficulty, i, held_out=held_out)) for i in range(first, first + count)]


_STATE = re.compile(r"\b([A-Z][a-z]+) ?= ?(\d+)\b")


def state_in(text: str) -> dict[str, int]:
    """Every ``Name=N`` written in `text`, the last one of each name winning."""
    return {name: int(count) for name, count in _STATE.findall(text)}


def cot_record(problem: LedgerProblem, prompt: str, *, task_id: str) -> dict[str, object]:
    """The input record of `memento data build` for `problem` asked as `prompt` (eval's user turn):
    ``task_id``, ``problem``, ``cot`` (``<think>`` reasoning ``</think>`` + the boxed answer), ``domain``,
    ``difficulty``, ``answer``."""
    cot = f"<think>\n{problem.reasoning()}\n</think>\n\nThe final answer is $\\boxed{{{problem.answer}}}$."
    return {
        "task_id": task_id,
        "problem": prompt,
        "cot": cot,
        "domain": "ledger",
        "difficulty": problem.difficulty,
        "answer": str(problem.answer),
    }


def memento_keeps_state(block: str, memento: str) -> bool:
    """Whether `memento` holds the state `block` ends with (every ``Name=N`` of its last paragraph's counts).

    The state a block ends with is read from the block itself (each paragraph ends by writing all
    counts), so this checks a built record without its generator.
    """
    expected = state_in(block)
    return bool(expected) and state_in(memento) == expected

"""What a benchmark is made of: `Problem`, `TestCase`, `Benchmark`.

A problem's `kind` says how a response is graded (see `memento.eval.grading.graders.grade`):

=========  ===============================================  ==========================================
kind       `answer`                                         graded by
=========  ===============================================  ==========================================
math       the gold expression (LaTeX or plain)             `grade_math`: math-verify equivalence
choice     the gold letter after the recorded shuffle       `grade_choice`: the response's last letter
code       a reference solution when one is known, else ""  the benchmark's tests in `sandbox`
toy        the integer, as text                             `memento.toy.task.parse_answer`
=========  ===============================================  ==========================================
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

ProblemKind = Literal["math", "choice", "code", "toy"]
KINDS: tuple[str, ...] = ("math", "choice", "code", "toy")
LETTERS = string.ascii_uppercase[:10]
"""Multiple-choice letters: up to ten choices, A-J."""


@dataclass(frozen=True)
class TestCase:
    """One input/output test of a code problem.

    `call=False`: the program reads `input` on stdin and must print `output`.
    `call=True`: `input` holds the JSON arguments, one per line, of a call to the problem's
    `entry_point` (a method of ``class Solution`` when the solution defines one), whose return
    value must equal the JSON value in `output`.
    """

    __test__ = False  # not a pytest test class

    input: str
    output: str
    call: bool = False


@dataclass(frozen=True)
class Problem:
    """One benchmark problem; `id` is stable across runs and sources of the same benchmark.

    `tests` (code only) is either a Python test program (HumanEval style: it defines
    ``check(candidate)``, which is called with `entry_point`; without an entry point the program
    runs as it is) or a tuple of `TestCase`. `choices` (choice only) are in the shuffled order the
    prompt shows, and `answer` is the gold letter in that order.
    """

    id: str
    problem: str
    answer: str
    kind: ProblemKind = "math"
    choices: tuple[str, ...] = ()
    tests: str | tuple[TestCase, ...] | None = None
    entry_point: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a problem needs a non-empty id")
        if self.kind not in KINDS:
            raise ValueError(f"problem {self.id}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.problem.strip():
            raise ValueError(f"problem {self.id}: empty problem text")
        if self.kind == "choice":
            if not 2 <= len(self.choices) <= len(LETTERS):
                raise ValueError(f"problem {self.id}: {len(self.choices)} choices; expected 2 to {len(LETTERS)}")
            if self.answer not in LETTERS[: len(self.choices)]:
                raise ValueError(
                    f"problem {self.id}: gold letter {self.answer!r} is not one of {LETTERS[: len(self.choices)]}"
                )
        elif self.choices:
            raise ValueError(f"problem {self.id}: choices given for a {self.kind} problem")
        if self.kind == "code":
            if not self.tests:
                raise ValueError(f"problem {self.id}: a code problem needs tests")
        elif self.tests is not None:
            raise ValueError(f"problem {self.id}: tests given for a {self.kind} problem")
        if self.kind in ("math", "toy") and not self.answer.strip():
            raise ValueError(f"problem {self.id}: empty gold answer")

    @property
    def letters(self) -> str:
        """The choice letters in use ("ABCD" for four choices); empty for other kinds."""
        return LETTERS[: len(self.choices)]


@dataclass
class Benchmark:
    """Problems in their official order, with where they were read from.

    `source` names the file, package file or hub dataset; `choice_seed` is the seed the
    multiple-choice options were shuffled with (None when no problem has choices).
    """

    name: str
    problems: list[Problem]
    source: str
    choice_seed: int | None = None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for problem in self.problems:
            if problem.id in seen:
                raise ValueError(f"benchmark {self.name}: duplicate problem id {problem.id!r}")
            seen.add(problem.id)

    def __len__(self) -> int:
        return len(self.problems)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.problems)

    def by_id(self) -> dict[str, Problem]:
        """Problems keyed by id (for grading responses made elsewhere)."""
        return {problem.id: problem for problem in self.problems}

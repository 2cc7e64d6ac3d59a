"""Is a response right? One grader per problem kind, plus `grade` / `grade_many` that dispatch.

* math: the answer (`answers.extract_math_answer`) equals the gold answer as a normalised string
  or by math-verify, run in worker processes under a per-answer deadline (`verify_pool`);
* choice: the chosen letter (`answers.extract_choice`) is the gold letter;
* code: the last python code block passes the problem's tests in the `sandbox`;
* toy: the toy task's own checker (`memento.toy.task.parse_answer`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from memento.eval.benchmarks.problems import LETTERS, Problem
from memento.eval.grading.answers import extract_choice, extract_code, extract_math_answer, normalize_math_answer
from memento.eval.grading.code_tests import build_program
from memento.eval.grading.equivalence import DEFAULT_TIMEOUT_S
from memento.eval.grading.sandbox import SandboxLimits, run_many
from memento.eval.grading.verify_pool import shared_pool


@dataclass(frozen=True)
class Grade:
    """The verdict on one response.

    `answer` is what was extracted (math expression, letter, toy integer as text; None for code
    and when nothing was found); `status` is "correct", "wrong", "no_answer", or for code the
    sandbox's "failed" / "timeout" / "memory".
    """

    correct: bool
    answer: str | None
    status: str


def math_equivalent(answer: str, gold: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether two extracted answers are the same (math-verify; wrong after ``2 * timeout_s + 1`` s)."""
    return shared_pool().equivalent(answer, gold, timeout_s)


def grade_math(response: str, gold: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """True when the response's final answer (last ``\\boxed{}``, a "Final Answer:" line, or the
    last ``$...$``, after ``</think>``) is equivalent to `gold`. Safe on any thread."""
    answer = extract_math_answer(response)
    return answer is not None and math_equivalent(answer, gold, timeout_s=timeout_s)


def grade_choice(response: str, gold_letter: str, *, letters: str | None = None) -> bool:
    """True when the response's last chosen letter is `gold_letter`.

    `letters` are the valid choices; by default A-D, or A up to the gold letter when it is
    later (E-J).
    """
    gold = gold_letter.strip().upper()
    if len(gold) != 1 or gold not in LETTERS:
        raise ValueError(f"gold letter must be one of {LETTERS}, got {gold_letter!r}")
    if letters is None:
        letters = LETTERS[: max(4, LETTERS.index(gold) + 1)]
    return extract_choice(response, letters) == gold


def grade_code(problem: Problem, response: str, *, limits: SandboxLimits | None = None) -> bool:
    """True when the response's last python code block passes `problem`'s tests in the sandbox."""
    return grade_many([(problem, response)], limits=limits, workers=1)[0].correct


def grade(problem: Problem, response: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Grade:
    """Grade a math, choice or toy response (code goes through `grade_many`, which runs sandboxes)."""
    if problem.kind == "math":
        answer = extract_math_answer(response)
        if answer is None:
            return Grade(False, None, "no_answer")
        correct = math_equivalent(answer, problem.answer, timeout_s=timeout_s)
        return Grade(correct, answer, "correct" if correct else "wrong")
    if problem.kind == "choice":
        letter = extract_choice(response, problem.letters)
        if letter is None:
            return Grade(False, None, "no_answer")
        return Grade(letter == problem.answer, letter, "correct" if letter == problem.answer else "wrong")
    if problem.kind == "toy":
        from memento.toy.task import parse_answer

        value = parse_answer(response)
        if value is None:
            return Grade(False, None, "no_answer")
        correct = str(value) == problem.answer
        return Grade(correct, str(value), "correct" if correct else "wrong")
    raise ValueError(f"problem {problem.id}: grade code responses with grade_many (they run in the sandbox)")


def grade_many(
    items: Sequence[tuple[Problem, str]],
    *,
    limits: SandboxLimits | None = None,
    workers: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[Grade]:
    """Grade (problem, response) pairs of any kinds, `workers` at a time; results in order.

    Code solutions run in parallel sandboxes; a solution that hangs, exhausts memory or
    crashes is graded wrong and the others go on.
    """
    workers = workers or os.cpu_count() or 1
    grades: list[Grade | None] = [None] * len(items)
    code_slots, programs = [], []
    for index, (problem, response) in enumerate(items):
        if problem.kind != "code":
            continue
        code = extract_code(response)
        if code is None:
            grades[index] = Grade(False, None, "no_answer")
        else:
            code_slots.append(index)
            programs.append(build_program(problem, code))
    for index, result in zip(code_slots, run_many(programs, limits, workers=workers), strict=True):
        grades[index] = Grade(result.passed, None, "correct" if result.passed else result.status)
    others = [index for index, (problem, _) in enumerate(items) if problem.kind != "code"]
    if others:
        with ThreadPoolExecutor(max_workers=min(workers, len(others))) as pool:
            verdicts = pool.map(lambda i: grade(items[i][0], items[i][1], timeout_s=timeout_s), others)
            for index, verdict in zip(others, verdicts, strict=True):
                grades[index] = verdict
    missing = [index for index, grade in enumerate(grades) if grade is None]
    if missing:
        raise RuntimeError(f"internal error: responses {missing} were not graded")
    return [grade for grade in grades if grade is not None]


def answer_classes(
    answers: Sequence[str | None], kind: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> list[int | None]:
    """A class number per answer (None for no answer), equal for answers counted as the same vote.

    Choice and toy answers are the same when equal. Math answers are first grouped by
    `normalize_math_answer`; then each group joins the first earlier group whose representative
    math-verify finds equivalent (its first member; O(groups²) comparisons).
    """
    classes: list[int | None] = []
    representatives: list[str] = []
    by_key: dict[str, int] = {}
    for answer in answers:
        if answer is None:
            classes.append(None)
            continue
        key = normalize_math_answer(answer) if kind == "math" else answer
        if key not in by_key:
            match = None
            if kind == "math":
                match = next(
                    (
                        number
                        for number, rep in enumerate(representatives)
                        if math_equivalent(answer, rep, timeout_s=timeout_s)
                    ),
                    None,
                )
            if match is None:
                representatives.append(answer)
                match = len(representatives) - 1
            by_key[key] = match
        classes.append(by_key[key])
    return classes

"""Rewards: memento.eval's graders and the shaping terms, and their bridge to TRL.

A `Reward` scores one completion of one memento.eval `Problem`; a `BatchReward` scores many at
once (code completions then run in parallel sandboxes). The completion text keeps the special
tokens (``<think>``, the memento markers) as `MementoGenerator` decodes it; graders read only what
follows ``</think>``. Graders return 1.0 or 0.0:

=========  ==============================================================================
grader     1.0 when
=========  ==============================================================================
auto       the problem's own kind says (memento.eval's `grade_many`; the default)
toy        the integer after ``</think>`` is the answer (the toy task's checker)
math       the final answer is equivalent to the gold one (math-verify)
choice     the last chosen letter is the gold letter
code       the last python code block passes the problem's tests in memento.eval's sandbox
=========  ==============================================================================

The shaping terms (well-formed blocks, a cap on memento length) are off unless given a weight.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memento.eval.benchmarks.problems import LETTERS, Problem
from memento.eval.grading.graders import grade_choice, grade_code, grade_many, grade_math
from memento.eval.grading.sandbox import SandboxLimits
from memento.format import IM_END, TraceFormatError, parse_text
from memento.rl.data import PROBLEM_ID
from memento.toy.task import parse_answer

Reward = Callable[[Problem, str], float]
BatchReward = Callable[[Sequence[Problem], Sequence[str]], list[float]]

COMPLETION_TEXT = "completion_text"
"""Extra rollout field that carries each completion's text with special tokens to the rewards."""
AUTO = "auto"
"""The grader named by each problem's kind."""


def toy_reward(problem: Problem, completion: str) -> float:
    """1.0 when the integer after ``</think>`` equals the problem's answer (the toy task's checker)."""
    value = parse_answer(completion)
    return float(value is not None and str(value) == problem.answer.strip())


def math_reward(problem: Problem, completion: str) -> float:
    """1.0 when the final answer is equivalent to the problem's answer (memento.eval's math-verify grader)."""
    return float(grade_math(completion, problem.answer))


def choice_reward(problem: Problem, completion: str) -> float:
    """1.0 when the last chosen letter is the problem's answer (memento.eval's multiple-choice grader)."""
    return float(grade_choice(completion, problem.answer, letters=problem.letters or None))


def code_reward(problem: Problem, completion: str, *, limits: SandboxLimits | None = None) -> float:
    """1.0 when the completion's last python code block passes the problem's tests in memento.eval's
    sandbox (`limits`: its wall clock and memory; a hang or a crash is 0.0)."""
    if problem.kind != "code":
        raise ValueError(f"problem {problem.id}: the code reward needs a code problem, got {problem.kind}")
    return float(grade_code(problem, completion, limits=limits))


GRADERS: dict[str, Reward] = {"toy": toy_reward, "math": math_reward, "choice": choice_reward, "code": code_reward}
"""Correctness rewards by name: the toy checker and memento.eval's graders."""
GRADER_NAMES: tuple[str, ...] = (AUTO, *GRADERS)


def check_grader(name: str, problems: Sequence[Problem]) -> None:
    """Refuse, before any rollout, problems the grader `name` cannot score (one line naming the first);
    `auto` scores every problem by its own kind."""
    if name not in GRADER_NAMES:
        raise ValueError(f"unknown reward {name!r}; choose one of {', '.join(GRADER_NAMES)}")
    for problem in problems:
        answer = problem.answer.strip()
        if name == "code" and problem.kind != "code":
            reason = f"is a {problem.kind} problem, without tests"
        elif name == "choice" and not (len(answer) == 1 and answer.upper() in LETTERS):
            reason = f"has the answer {answer!r}, not a letter A-{LETTERS[-1]}"
        elif name == "toy" and not answer.isdigit():
            reason = f"has the answer {answer!r}, not a non-negative integer"
        elif name == "math" and not answer:
            reason = "has no answer"
        else:
            continue
        raise ValueError(f"--reward {name}: problem {problem.id} {reason}")


def each(reward: Reward) -> BatchReward:
    """`reward` applied to every (problem, completion) pair in turn."""

    def batch(problems: Sequence[Problem], completions: Sequence[str]) -> list[float]:
        return [float(reward(problem, text)) for problem, text in zip(problems, completions, strict=True)]

    return batch


def correctness_reward(
    name: str = AUTO, *, limits: SandboxLimits | None = None, workers: int | None = None
) -> BatchReward:
    """The grader `name` over a batch; `auto` and `code` grade with memento.eval's `grade_many`
    (code completions in `workers` parallel sandboxes under `limits`)."""
    if name not in GRADER_NAMES:
        raise ValueError(f"unknown reward {name!r}; choose one of {', '.join(GRADER_NAMES)}")
    if name in (AUTO, "code"):

        def graded(problems: Sequence[Problem], completions: Sequence[str]) -> list[float]:
            if name == "code":
                check_grader("code", problems)
            grades = grade_many(list(zip(problems, completions, strict=True)), limits=limits, workers=workers)
            return [float(grade.correct) for grade in grades]

        return graded
    return each(GRADERS[name])


def _trace(completion: str):
    text = completion.removesuffix(IM_END) if completion.endswith(IM_END) else completion
    try:
        return parse_text(text)
    except TraceFormatError:
        return None


def well_formed_reward(problem: Problem | None, completion: str) -> float:
    """1.0 when the completion is a closed memento trace: at least one block, every block closed with
    a memento (the last may go without), and an answer after ``</think>``."""
    trace = _trace(completion)
    if trace is None or trace.answer is None or not trace.blocks:
        return 0.0
    closed = all(b.reasoning_closed and b.memento is not None and b.memento_closed for b in trace.blocks[:-1])
    return float(closed and trace.blocks[-1].reasoning_closed)


def memento_length_penalty(max_tokens: int, count_tokens: Callable[[str], int]) -> Reward:
    """A reward of minus the share of mementos longer than `max_tokens` (0 when none is, or no trace)."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")

    def penalty(problem: Problem | None, completion: str) -> float:
        trace = _trace(completion)
        mementos = [block.memento for block in trace.blocks if block.memento is not None] if trace else []
        if not mementos:
            return 0.0
        return -sum(count_tokens(memento) > max_tokens for memento in mementos) / len(mementos)

    penalty.__name__ = f"memento_over_{max_tokens}_tokens"
    return penalty


@dataclass(frozen=True)
class WeightedReward:
    """One named reward term over a batch and its weight in the total (TRL's ``reward_weights``)."""

    name: str
    reward: BatchReward
    weight: float = 1.0


def as_trl_reward(term: WeightedReward, problems: Mapping[str, Problem]) -> Callable[..., list[float]]:
    """A TRL reward function (``prompts, completions, completion_ids, **columns``) that scores the
    batch with `term.reward`: each row's problem is ``problems[row["problem_id"]]``, each completion
    its text with the special tokens."""

    def reward_function(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        texts = columns.get(COMPLETION_TEXT) or [_as_text(c) for c in completions]
        ids = columns.get(PROBLEM_ID)
        if ids is None:
            raise ValueError(f"the dataset rows need a {PROBLEM_ID!r} column (memento.rl.data.dataset_rows)")
        unknown = [problem_id for problem_id in ids if problem_id not in problems]
        if unknown:
            raise ValueError(f"rows name problems the rewards do not know: {unknown[:3]}")
        return [float(r) for r in term.reward([problems[problem_id] for problem_id in ids], texts)]

    reward_function.__name__ = term.name
    return reward_function


def _as_text(completion: Any) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return "".join(str(message.get("content", "")) for message in completion)
    return str(completion)

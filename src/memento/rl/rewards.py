"""Rewards: `Reward = Callable[[problem, completion_text], float]`, and their bridge to TRL.

A problem is one dataset row (a mapping with at least ``prompt``; graders read ``answer`` or their
own fields). The completion text keeps the special tokens (``<think>``, the memento markers), as
`MementoGenerator` decodes it. Graders (the toy checker now; memento.eval's math / multiple-choice /
code graders later) return 1.0 or 0.0; the optional shaping terms are off unless given a weight.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from memento.format import IM_END, TraceFormatError, parse_text
from memento.toy.task import parse_answer

Problem = Mapping[str, Any]
Reward = Callable[[Problem, str], float]

COMPLETION_TEXT = "completion_text"
"""Extra rollout field that carries each completion's text with special tokens to the rewards."""


def toy_reward(problem: Problem, completion: str) -> float:
    """1.0 when the integer after ``</think>`` equals ``problem["answer"]`` (the toy task's checker)."""
    return float(parse_answer(completion) == int(problem["answer"]))


def _trace(completion: str):
    text = completion.removesuffix(IM_END) if completion.endswith(IM_END) else completion
    try:
        return parse_text(text)
    except TraceFormatError:
        return None


def well_formed_reward(problem: Problem, completion: str) -> float:
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

    def penalty(problem: Problem, completion: str) -> float:
        trace = _trace(completion)
        mementos = [block.memento for block in trace.blocks if block.memento is not None] if trace else []
        if not mementos:
            return 0.0
        return -sum(count_tokens(memento) > max_tokens for memento in mementos) / len(mementos)

    penalty.__name__ = f"memento_over_{max_tokens}_tokens"
    return penalty


def math_reward(problem: Problem, completion: str) -> float:
    """1.0 when the final answer is equivalent to ``problem["answer"]`` (memento.eval's math-verify grader)."""
    from memento.eval import grade_math

    return float(grade_math(completion, str(problem["answer"])))


def choice_reward(problem: Problem, completion: str) -> float:
    """1.0 when the last standalone letter is ``problem["answer"]`` (memento.eval's multiple-choice grader)."""
    from memento.eval import grade_choice

    return float(grade_choice(completion, str(problem["answer"])))


GRADERS: dict[str, Reward] = {"toy": toy_reward, "math": math_reward, "choice": choice_reward}
"""Correctness rewards by name: the toy checker and memento.eval's graders (code tests are not wired yet)."""


@dataclass(frozen=True)
class WeightedReward:
    """One named reward term and its weight in the total (TRL's ``reward_weights``)."""

    name: str
    reward: Reward
    weight: float = 1.0


def as_trl_reward(term: WeightedReward) -> Callable[..., list[float]]:
    """A TRL reward function (``prompts, completions, completion_ids, **columns``) that calls `term.reward`
    once per completion, on the row's problem and the completion text with its special tokens."""

    def reward_function(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        texts = columns.get(COMPLETION_TEXT) or [_as_text(c) for c in completions]
        fields = {
            key: values
            for key, values in columns.items()
            if isinstance(values, list) and len(values) == len(prompts) and key != COMPLETION_TEXT
        }
        rewards = []
        for index, (prompt, text) in enumerate(zip(prompts, texts, strict=True)):
            problem = {"prompt": prompt, **{key: values[index] for key, values in fields.items()}}
            rewards.append(float(term.reward(problem, text)))
        return rewards

    reward_function.__name__ = term.name
    return reward_function


def _as_text(completion: Any) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return "".join(str(message.get("content", "")) for message in completion)
    return str(completion)

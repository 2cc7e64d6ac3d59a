"""Rewards: memento.eval's graders (by problem kind, or one for all), the shaping terms, the TRL bridge."""

from __future__ import annotations

import time

import pytest

from memento.eval import Problem, load_benchmark
from memento.eval.grading.sandbox import SandboxLimits
from memento.rl.data import PROBLEM_ID
from memento.rl.rewards import (
    COMPLETION_TEXT,
    GRADERS,
    WeightedReward,
    as_trl_reward,
    check_grader,
    code_reward,
    correctness_reward,
    each,
    memento_length_penalty,
    toy_reward,
    well_formed_reward,
)

THINKING = "<think>\n<|block_start|>x<|block_end|>\n<|summary_start|>y<|summary_end|>\n</think>\n\n"
GOOD = (
    "<think>\n<|block_start|>a:3 0+3=3, state 3.<|block_end|>\n<|summary_start|>a=3<|summary_end|>\n"
    "<|block_start|>b:4 3+4=7, state 7.<|block_end|>\n<|summary_start|>b=7<|summary_end|>\n</think>\n\n7<|im_end|>"
)
FAST = SandboxLimits(timeout_s=2.0, memory_mb=512)


def toy(answer: str, problem_id: str = "t") -> Problem:
    return Problem(id=problem_id, problem="sum mod 10: a:3 b:4", answer=answer, kind="toy")


def fenced(code: str) -> str:
    return f"{THINKING}```python\n{code}\n```<|im_end|>"


@pytest.fixture(scope="module")
def humaneval() -> Problem:
    """HumanEval/0 from the offline package copy (has_close_elements; tests call check(candidate))."""
    return load_benchmark("humaneval", limit=1, use_hub=False).problems[0]


def test_toy_reward_reads_the_answer_after_think():
    assert toy_reward(toy("7"), GOOD) == 1.0
    assert toy_reward(toy("8"), GOOD) == 0.0
    assert toy_reward(toy("7"), GOOD.replace("</think>", "")) == 0.0  # no answer section


def test_well_formed_reward():
    assert well_formed_reward(None, GOOD) == 1.0
    last_without_memento = GOOD.replace("<|summary_start|>b=7<|summary_end|>\n", "")
    assert well_formed_reward(None, last_without_memento) == 1.0  # the final block may go without a memento
    assert well_formed_reward(None, GOOD.replace("</think>\n\n7<|im_end|>", "")) == 0.0  # never answered
    assert well_formed_reward(None, GOOD.replace("<|block_end|>", "", 1)) == 0.0  # nested block
    assert well_formed_reward(None, "<think>\n</think>\n\n7") == 0.0  # no block at all


def test_memento_length_penalty_counts_long_mementos():
    penalty = memento_length_penalty(2, len)  # characters as tokens
    assert penalty(None, GOOD) == -1.0  # "a=3" and "b=7" are both 3 long
    assert memento_length_penalty(3, len)(None, GOOD) == 0.0
    assert penalty(None, "no trace at all") == 0.0


def test_eval_graders_are_rewards():
    half = Problem(id="m", problem="What is 1/2?", answer="\\frac{1}{2}")
    assert GRADERS["math"](half, THINKING + "So the answer is $\\boxed{0.5}$.") == 1.0
    assert GRADERS["math"](half, THINKING + "So the answer is $\\boxed{3}$.") == 0.0
    choice = Problem(id="c", problem="Pick one.", answer="C", kind="choice", choices=("a", "b", "c", "d", "e"))
    assert GRADERS["choice"](choice, THINKING + "The answer is (C).") == 1.0
    assert GRADERS["choice"](choice, THINKING + "Answer: E") == 0.0  # E is a valid letter of this problem


def test_the_code_reward_runs_the_tests_in_the_sandbox(humaneval):
    correct = humaneval.answer  # the prompt + the canonical solution
    wrong = humaneval.problem + "    return False\n"
    assert code_reward(humaneval, fenced(correct), limits=FAST) == 1.0
    assert code_reward(humaneval, fenced(wrong), limits=FAST) == 0.0
    assert code_reward(humaneval, THINKING + "I would compare every pair.") == 0.0  # no code block
    with pytest.raises(ValueError, match="needs a code problem"):
        code_reward(toy("7"), fenced(correct))


def test_an_infinite_loop_is_stopped_and_scores_zero(humaneval):
    looping = humaneval.problem + "    while True:\n        pass\n"
    started = time.monotonic()
    assert code_reward(humaneval, fenced(looping), limits=FAST) == 0.0
    assert time.monotonic() - started < 15  # stopped at the 2 s deadline, not hung


def test_auto_grades_each_problem_by_its_kind_in_one_batch(humaneval):
    half = Problem(id="m", problem="What is 1/2?", answer="\\frac{1}{2}")
    problems = [humaneval, humaneval, half, toy("7"), toy("5")]
    completions = [
        fenced(humaneval.answer),
        fenced(humaneval.problem + "    while True:\n        pass\n"),
        THINKING + "$\\boxed{0.5}$",
        GOOD,
        GOOD,
    ]
    assert correctness_reward("auto", limits=FAST)(problems, completions) == [1.0, 0.0, 1.0, 1.0, 0.0]
    assert correctness_reward("code", limits=FAST)(problems[:2], completions[:2]) == [1.0, 0.0]
    assert correctness_reward("toy")(problems[3:], completions[3:]) == [1.0, 0.0]


def test_a_forced_grader_refuses_problems_it_cannot_score(humaneval):
    check_grader("auto", [humaneval, toy("7")])
    check_grader("math", [toy("7")])  # a toy answer is a math answer too
    with pytest.raises(ValueError, match="--reward code: problem t is a toy problem"):
        check_grader("code", [humaneval, toy("7")])
    with pytest.raises(ValueError, match="--reward choice: problem t has the answer '7', not a letter"):
        check_grader("choice", [toy("7")])
    with pytest.raises(ValueError, match="--reward toy: problem HumanEval/0 has the answer"):
        check_grader("toy", [humaneval])
    with pytest.raises(ValueError, match="unknown reward 'exact'"):
        correctness_reward("exact")


def test_trl_bridge_finds_each_rows_problem_and_reads_the_text_with_special_tokens():
    problems = {"p1": toy("7", "p1"), "p2": toy("5", "p2")}
    function = as_trl_reward(WeightedReward("toy", each(toy_reward)), problems)
    assert function.__name__ == "toy"
    rewards = function(
        prompts=["q1", "q2"],
        completions=["7", "7"],  # TRL's decoding drops special tokens: the bridge reads completion_text
        completion_ids=[[1], [2]],
        **{PROBLEM_ID: ["p1", "p2"], COMPLETION_TEXT: [GOOD, GOOD]},
        trainer_state=None,
    )
    assert rewards == [1.0, 0.0]
    with pytest.raises(ValueError, match="need a 'problem_id' column"):
        function(prompts=["q1"], completions=["7"], completion_ids=[[1]])
    with pytest.raises(ValueError, match="do not know"):
        function(prompts=["q1"], completions=["7"], completion_ids=[[1]], **{PROBLEM_ID: ["p9"]})

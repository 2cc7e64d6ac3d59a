"""Rewards: the toy checker, the shaping terms, and their bridge to TRL's reward-function signature."""

from __future__ import annotations

from memento.rl.rewards import (
    COMPLETION_TEXT,
    WeightedReward,
    as_trl_reward,
    memento_length_penalty,
    toy_reward,
    well_formed_reward,
)

GOOD = (
    "<think>\n<|block_start|>a:3 0+3=3, state 3.<|block_end|>\n<|summary_start|>a=3<|summary_end|>\n"
    "<|block_start|>b:4 3+4=7, state 7.<|block_end|>\n<|summary_start|>b=7<|summary_end|>\n</think>\n\n7<|im_end|>"
)


def test_toy_reward_reads_the_answer_after_think():
    assert toy_reward({"answer": "7"}, GOOD) == 1.0
    assert toy_reward({"answer": 7}, GOOD) == 1.0
    assert toy_reward({"answer": "8"}, GOOD) == 0.0
    assert toy_reward({"answer": "7"}, GOOD.replace("</think>", "")) == 0.0  # no answer section


def test_well_formed_reward():
    assert well_formed_reward({}, GOOD) == 1.0
    last_without_memento = GOOD.replace("<|summary_start|>b=7<|summary_end|>\n", "")
    assert well_formed_reward({}, last_without_memento) == 1.0  # the final block may go without a memento
    assert well_formed_reward({}, GOOD.replace("</think>\n\n7<|im_end|>", "")) == 0.0  # never answered
    assert well_formed_reward({}, GOOD.replace("<|block_end|>", "", 1)) == 0.0  # nested block
    assert well_formed_reward({}, "<think>\n</think>\n\n7") == 0.0  # no block at all


def test_memento_length_penalty_counts_long_mementos():
    penalty = memento_length_penalty(2, len)  # characters as tokens
    assert penalty({}, GOOD) == -1.0  # "a=3" and "b=7" are both 3 long
    assert memento_length_penalty(3, len)({}, GOOD) == 0.0
    assert penalty({}, "no trace at all") == 0.0


def test_trl_bridge_passes_the_row_and_the_text_with_special_tokens():
    function = as_trl_reward(WeightedReward("toy", toy_reward))
    assert function.__name__ == "toy"
    rewards = function(
        prompts=["p1", "p2"],
        completions=["7", "7"],  # TRL's decoding drops special tokens: the bridge reads completion_text
        completion_ids=[[1], [2]],
        answer=["7", "5"],
        **{COMPLETION_TEXT: [GOOD, GOOD]},
        trainer_state=None,
    )
    assert rewards == [1.0, 0.0]


def test_eval_graders_are_rewards():
    from memento.rl.rewards import GRADERS

    answer = "<think>\n<|block_start|>x<|block_end|>\n<|summary_start|>y<|summary_end|>\n</think>\n"
    assert GRADERS["math"]({"answer": "\\frac{1}{2}"}, answer + "So the answer is $\\boxed{0.5}$.") == 1.0
    assert GRADERS["math"]({"answer": "\\frac{1}{2}"}, answer + "So the answer is $\\boxed{3}$.") == 0.0
    assert GRADERS["choice"]({"answer": "C"}, answer + "The answer is (C).") == 1.0
    assert GRADERS["choice"]({"answer": "C"}, answer + "The answer is (B).") == 0.0

"""Reinforcement learning (CISPO on TRL's GRPOTrainer) on rollouts generated with memento eviction.

`token_logprobs` is what the training forward computes; `run_rl(RLOptions(...))` is `memento rl`.
Problems are memento.eval's (`memento.rl.data.load_problems`: any `memento eval --benchmark`), and
so are the graders behind the rewards (`correctness_reward`: by each problem's kind by default).
TRL is imported only by the trainer side (`MementoGRPOTrainer`, `run_rl`).
"""

from memento.rl.logprobs import memento_inputs, token_logprobs
from memento.rl.options import RLOptions
from memento.rl.rewards import (
    GRADERS,
    Problem,
    Reward,
    code_reward,
    correctness_reward,
    toy_reward,
    well_formed_reward,
)

__all__ = [
    "GRADERS",
    "Problem",
    "RLOptions",
    "Reward",
    "code_reward",
    "correctness_reward",
    "memento_inputs",
    "run_rl",
    "token_logprobs",
    "toy_reward",
    "well_formed_reward",
]


def __getattr__(name: str):
    if name == "run_rl":
        from memento.rl.run import run_rl

        return run_rl
    raise AttributeError(f"module 'memento.rl' has no attribute {name!r}")

"""Reinforcement learning (CISPO on TRL's GRPOTrainer) on rollouts generated with memento eviction.

`token_logprobs` is what the training forward computes; `run_rl(RLOptions(...))` is `memento rl`.
TRL is imported only by the trainer side (`MementoGRPOTrainer`, `run_rl`).
"""

from memento.rl.logprobs import memento_inputs, token_logprobs
from memento.rl.options import RLOptions
from memento.rl.rewards import GRADERS, Problem, Reward, toy_reward, well_formed_reward

__all__ = [
    "GRADERS",
    "Problem",
    "RLOptions",
    "Reward",
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

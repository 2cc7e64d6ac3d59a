"""Reinforcement learning (CISPO on TRL's GRPOTrainer) on rollouts generated with memento eviction.

`token_logprobs` is what the training forward computes; `run_rl(RLOptions(...))` is `memento rl`.
Problems are memento.eval's (`memento.rl.data.load_problems`: any `memento eval --benchmark`), and
so are the graders behind the rewards (`correctness_reward`: by each problem's kind by default).
TRL is imported only by the trainer side (`MementoGRPOTrainer`, `run_rl`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memento.lazy import lazy_exports

_EXPORTS = {
    "memento_inputs": "logprobs",
    "token_logprobs": "logprobs",
    "RLOptions": "options",
    "GRADERS": "rewards",
    "Problem": "rewards",
    "Reward": "rewards",
    "code_reward": "rewards",
    "correctness_reward": "rewards",
    "toy_reward": "rewards",
    "well_formed_reward": "rewards",
    "run_rl": "run",
}
"""Public name -> the submodule defining it, loaded on first use (so importing this package stays light)."""

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

if TYPE_CHECKING:
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
    from memento.rl.run import run_rl


__getattr__ = lazy_exports(__name__, _EXPORTS)

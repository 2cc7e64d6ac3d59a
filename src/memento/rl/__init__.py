"""Reinforcement learning (CISPO on TRL's GRPOTrainer) on rollouts generated with memento eviction."""

from memento.rl.logprobs import memento_inputs, token_logprobs

__all__ = ["memento_inputs", "token_logprobs"]

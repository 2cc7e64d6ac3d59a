"""Rollouts sampled by vLLM with the memento plugin evicting: TRL's ``rollout_func``, vllm backend.

`VLLMRollout` has the `MementoRollout` contract (same prompts in, same fields out, so
``rollouts.jsonl`` keeps its shape); its log-probs are vLLM's processed log-probs of the sampled
tokens under eviction, which TRL's importance-sampling correction compares with the trainer's
memento-masked forward (`MementoGRPOTrainer` with ``rollout_engine``). `WeightSync` is what TRL
calls (``vllm_generation.sync_weights()``) before the first generation after each optimizer step.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.inference.sampling import SamplingOptions
from memento.rl.rollout import encode_prompt, log_metric, log_rollout_speed, rollout_output
from memento.rl.vllm_engine import CallStats, RolloutEngine

BLOCKS_FREED = "vllm/kv_blocks_freed"
PEAK_BLOCKS = "vllm/kv_peak_blocks"
PEAK_TOKENS_PER_ROLLOUT = "vllm/kv_peak_tokens_per_rollout"


class VLLMRollout:
    """Callable ``(prompts, trainer) -> {"prompt_ids", "completion_ids", "logprobs", ...}`` for TRL.

    Args:
        engine: the in-process engine (its weights follow the trainer's through `WeightSync`).
        tokenizer: the model's tokenizer (string prompts get its chat template).
        config: memento options of every rollout (sent per request; keep_last_n_blocks=-1: no eviction).
        sampling: temperature > 0, top_p, top_k and max_new_tokens (vLLM's engine seed draws).
    """

    def __init__(self, engine: RolloutEngine, tokenizer: Any, config: MementoConfig, sampling: SamplingOptions) -> None:
        if sampling.temperature <= 0 or sampling.max_new_tokens is None:
            raise ValueError(
                f"RL rollouts sample (temperature > 0, got {sampling.temperature}) a set number of "
                f"tokens (max_new_tokens, got {sampling.max_new_tokens})"
            )
        self.engine = engine
        self.tokenizer = tokenizer
        self.config = config
        self.sampling = sampling
        self.special_ids = SpecialIds.from_tokenizer(tokenizer)
        self.last: CallStats | None = None

    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, list[Any]]:
        model = trainer.accelerator.unwrap_model(trainer.model)
        start = time.perf_counter()
        output = self.generate(model, prompts)
        seconds = time.perf_counter() - start
        log_rollout_speed(trainer, len(prompts), seconds)
        stats = self.last
        assert stats is not None
        log_metric(trainer, BLOCKS_FREED, stats.blocks_released)
        log_metric(trainer, PEAK_BLOCKS, stats.peak_blocks)
        log_metric(trainer, PEAK_TOKENS_PER_ROLLOUT, stats.peak_blocks * stats.block_size / max(stats.rollouts, 1))
        return output

    def generate(self, model: Any, prompts: Sequence[Any]) -> dict[str, list[Any]]:
        """Sample one completion per prompt with the engine's current weights (`model`: for KV geometry)."""
        encoded = [encode_prompt(self.tokenizer, prompt) for prompt in prompts]
        rollouts, self.last = self.engine.generate(
            encoded,
            self.config,
            temperature=self.sampling.temperature,
            top_p=self.sampling.top_p,
            top_k=self.sampling.top_k,
            max_new_tokens=int(self.sampling.max_new_tokens or 1),
        )
        return rollout_output(
            model,
            self.special_ids,
            self.config,
            [r.prompt_ids for r in rollouts],
            [r.token_ids for r in rollouts],
            [r.logprobs for r in rollouts],
            # as `MementoGenerator` writes it: vLLM's text leaves out the end-of-sequence token's
            [self.tokenizer.decode(r.token_ids, skip_special_tokens=False) for r in rollouts],
        )


class WeightSync:
    """TRL's ``vllm_generation`` for the trainer: ``sync_weights()`` loads the policy into the engine."""

    def __init__(self, engine: RolloutEngine, trainer: Any) -> None:
        self.engine = engine
        self.trainer = trainer

    def sync_weights(self) -> None:
        self.engine.load_model(self.trainer.accelerator.unwrap_model(self.trainer.model))

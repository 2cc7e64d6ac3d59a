"""Rollouts under eviction: TRL's ``rollout_func`` backed by `MementoGenerator` (hf backend).

Each prompt TRL hands over (already repeated G times per group) gets one completion, sampled with
the memento config, so blocks are physically evicted while sampling exactly as at inference. The
returned ``logprobs`` are those `MementoGenerator` records: log-softmax of the model's logits over
the sampling temperature, before top-k/top-p and logits processors, i.e. the quantity TRL's policy
forward recomputes (its fused LM head divides by the same temperature). They differ from vLLM's
``processed_logprobs`` only where top-k/top-p/min-p or a forcing processor (``max_block_tokens``)
changed the sampling distribution. Per-completion blocks and peak KV (`memento.kv.simulate`) ride
along as extra fields for logging.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from memento.attention import analyze
from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.inference import MementoGenerator
from memento.kv import KVGeometry, simulate
from memento.rl.rewards import COMPLETION_TEXT

KV_PEAK_TOKENS = "kv_peak_tokens"
BLOCKS = "blocks"


@dataclass
class SamplingOptions:
    """How rollouts are sampled (TRL's GRPOConfig names): temperature > 0, top_p in (0, 1], top_k 0 = off."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 1024
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive for RL rollouts, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("top_k must be >= 0; max_new_tokens and batch_size must be >= 1")


class MementoRollout:
    """Callable ``(prompts, trainer) -> {"prompt_ids", "completion_ids", "logprobs", ...}`` for TRL.

    Args:
        tokenizer: the model's tokenizer (string prompts get its chat template).
        config: memento options used while sampling (keep_last_n_blocks=-1: no eviction).
        sampling: temperature, top-p/top-k, length and batch size.
        seed: base seed; each call samples with ``seed + call index``.
    """

    def __init__(self, tokenizer: Any, config: MementoConfig, sampling: SamplingOptions, *, seed: int = 0) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.sampling = sampling
        self.seed = seed
        self.calls = 0
        self.special_ids = SpecialIds.from_tokenizer(tokenizer)

    def encode(self, generator: MementoGenerator, prompt: Any) -> list[int]:
        """A string gets the chat template; a list of messages is rendered with it; id lists pass through."""
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict):
            if not getattr(self.tokenizer, "chat_template", None):
                raise ValueError("conversational prompts need a tokenizer with a chat template")
            ids = self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
            return [int(t) for t in (ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "input_ids") else ids)]
        return generator.encode_prompts([prompt])[0]

    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, list[Any]]:
        model = trainer.accelerator.unwrap_model(trainer.model) if trainer is not None else None
        return self.generate(model, prompts)

    def generate(self, model: Any, prompts: Sequence[Any]) -> dict[str, list[Any]]:
        """Sample one completion per prompt with `model` (train/eval mode restored after)."""
        generator = MementoGenerator(model, self.tokenizer, self.config)
        was_training = model.training
        model.eval()
        seed = self.seed + self.calls
        self.calls += 1
        encoded = [self.encode(generator, prompt) for prompt in prompts]
        results = []
        try:
            for offset in range(0, len(encoded), self.sampling.batch_size):
                results += generator.generate(
                    encoded[offset : offset + self.sampling.batch_size],
                    max_new_tokens=self.sampling.max_new_tokens,
                    temperature=self.sampling.temperature,
                    top_p=self.sampling.top_p,
                    top_k=self.sampling.top_k or None,
                    seed=seed + offset,
                    return_logprobs=True,
                )
        finally:
            model.train(was_training)
        geometry = KVGeometry.from_config(model.config, bytes_per_element=torch.finfo(model.dtype).bits // 8)
        blocks, peaks = [], []
        for result in results:
            ids = result.prompt_ids + result.token_ids
            layout = analyze(ids, self.special_ids, self.config)
            prompt_length = len(result.prompt_ids)
            blocks.append(sum(b.summary_end is not None and b.start >= prompt_length for b in layout.blocks))
            # the last sampled token never enters the cache
            cached = ids[:-1]
            peaks.append(
                simulate(cached, self.special_ids, geometry, self.config, prompt_length=prompt_length).peak_tokens
            )
        return {
            "prompt_ids": [r.prompt_ids for r in results],
            "completion_ids": [r.token_ids for r in results],
            "logprobs": [r.logprobs for r in results],
            COMPLETION_TEXT: [r.text for r in results],
            BLOCKS: blocks,
            KV_PEAK_TOKENS: peaks,
        }

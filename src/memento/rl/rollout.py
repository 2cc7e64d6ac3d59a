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
from dataclasses import replace
from typing import Any

import torch

from memento.attention import analyze
from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.inference import MementoGenerator
from memento.inference.sampling import SamplingOptions
from memento.kv import KVGeometry, simulate
from memento.rl.rewards import COMPLETION_TEXT

KV_PEAK_TOKENS = "kv_peak_tokens"
BLOCKS = "blocks"


class MementoRollout:
    """Callable ``(prompts, trainer) -> {"prompt_ids", "completion_ids", "logprobs", ...}`` for TRL.

    Args:
        tokenizer: the model's tokenizer (string prompts get its chat template).
        config: memento options used while sampling (keep_last_n_blocks=-1: no eviction).
        sampling: generation's own options (temperature > 0 here; max_new_tokens set); its seed
            is replaced by ``seed + call index``, so each call of a run draws anew.
        batch_size: sequences decoded together.
        seed: base seed.
    """

    def __init__(
        self,
        tokenizer: Any,
        config: MementoConfig,
        sampling: SamplingOptions,
        *,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        if sampling.temperature <= 0 or sampling.max_new_tokens is None:
            raise ValueError(
                f"RL rollouts sample (temperature > 0, got {sampling.temperature}) a set number of "
                f"tokens (max_new_tokens, got {sampling.max_new_tokens})"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tokenizer = tokenizer
        self.config = config
        self.sampling = sampling
        self.batch_size = batch_size
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
            for offset in range(0, len(encoded), self.batch_size):
                sampling = replace(self.sampling, seed=seed + offset).as_kwargs()
                results += generator.generate(
                    encoded[offset : offset + self.batch_size], **sampling, return_logprobs=True
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

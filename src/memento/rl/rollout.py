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

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from memento.attention import analyze
from memento.config import MementoConfig
from memento.eval.run.replay import chat_prompt_ids
from memento.format import SpecialIds
from memento.inference import MementoGenerator
from memento.inference.sampling import SamplingOptions
from memento.kv import KVGeometry, simulate
from memento.rl.rewards import COMPLETION_TEXT

KV_PEAK_TOKENS = "kv_peak_tokens"
BLOCKS = "blocks"
ROLLOUTS_PER_SECOND = "rollouts/per_second"


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

    def encode(self, prompt: Any) -> list[int]:
        """A string gets the chat template; a list of messages is rendered with it; id lists pass through."""
        return encode_prompt(self.tokenizer, prompt)

    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, list[Any]]:
        model = trainer.accelerator.unwrap_model(trainer.model) if trainer is not None else None
        start = time.perf_counter()
        output = self.generate(model, prompts)
        if trainer is not None:
            log_rollout_speed(trainer, len(prompts), time.perf_counter() - start)
        return output

    def generate(self, model: Any, prompts: Sequence[Any]) -> dict[str, list[Any]]:
        """Sample one completion per prompt with `model` (train/eval mode restored after)."""
        generator = MementoGenerator(model, self.tokenizer, self.config)
        was_training = model.training
        model.eval()
        seed = self.seed + self.calls
        self.calls += 1
        encoded = [self.encode(prompt) for prompt in prompts]
        results = []
        try:
            for offset in range(0, len(encoded), self.batch_size):
                sampling = replace(self.sampling, seed=seed + offset).as_kwargs()
                results += generator.generate(
                    encoded[offset : offset + self.batch_size], **sampling, return_logprobs=True
                )
        finally:
            model.train(was_training)
        return rollout_output(
            model,
            self.special_ids,
            self.config,
            [r.prompt_ids for r in results],
            [r.token_ids for r in results],
            [r.logprobs for r in results],
            [r.text for r in results],
        )


def encode_prompt(tokenizer: Any, prompt: Any) -> list[int]:
    """A string gets the chat template (memento.eval's user turn); a list of messages is rendered with
    it; id lists pass through."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict):
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("conversational prompts need a tokenizer with a chat template")
        ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
        return [int(t) for t in (ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "input_ids") else ids)]
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError("a prompt is empty; expected the text of a user message")
        return chat_prompt_ids(tokenizer, prompt)
    ids = [int(t) for t in prompt]
    if not ids:
        raise ValueError("every prompt must have at least one token")
    return ids


def rollout_output(
    model: Any,
    special_ids: SpecialIds,
    config: MementoConfig,
    prompt_ids: list[list[int]],
    completion_ids: list[list[int]],
    logprobs: list[list[float]],
    texts: list[str],
) -> dict[str, list[Any]]:
    """TRL's rollout dict plus the logged extras: blocks closed and peak KV tokens per completion
    (`memento.kv.simulate` replaying the sequence; the last sampled token never enters the cache)."""
    geometry = KVGeometry.from_config(model.config, bytes_per_element=torch.finfo(model.dtype).bits // 8)
    blocks, peaks = [], []
    for prompt, completion in zip(prompt_ids, completion_ids, strict=True):
        ids = prompt + completion
        layout = analyze(ids, special_ids, config)
        blocks.append(sum(b.summary_end is not None and b.start >= len(prompt) for b in layout.blocks))
        peaks.append(simulate(ids[:-1], special_ids, geometry, config, prompt_length=len(prompt)).peak_tokens)
    return {
        "prompt_ids": prompt_ids,
        "completion_ids": completion_ids,
        "logprobs": logprobs,
        COMPLETION_TEXT: texts,
        BLOCKS: blocks,
        KV_PEAK_TOKENS: peaks,
    }


def log_metric(trainer: Any, name: str, value: float) -> None:
    """Append one value to the trainer's metrics of its current mode (TRL averages them per log)."""
    mode = "train" if trainer.model.training else "eval"
    trainer._metrics[mode][name].append(float(value))


def log_rollout_speed(trainer: Any, rollouts: int, seconds: float) -> None:
    """``rollouts/per_second`` and ``rollouts/seconds`` of one call of the rollout function."""
    log_metric(trainer, ROLLOUTS_PER_SECOND, rollouts / max(seconds, 1e-9))
    log_metric(trainer, "rollouts/seconds", seconds)

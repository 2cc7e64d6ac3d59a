"""A vLLM engine in the trainer's process, with the memento plugin on: rollouts and weight reloads.

Why not TRL's own colocate mode (``GRPOConfig(use_vllm=True, vllm_mode="colocate")``): TRL 1.16
supports vLLM 0.22-0.31 (we run 0.32); it builds its `vllm.LLM` itself, without the plugin's
scheduler, logits processors or ``enable_prefix_caching=False``; and its weight sync calls the
model's ``load_weights`` directly, which on vLLM's CPU build writes into parameters that the
linear layers replaced by prepacked oneDNN/SGL kernels at load time (the new weights never reach
the forward). This engine is built by `memento.vllm.engine.offline_llm` (the plugin's arguments)
with its engine core in this process, and reloads weights with vLLM's own in-place
``reload_weights`` (layerwise: each layer's kernels are re-prepared after its weights arrive).

Each request carries its memento config in ``SamplingParams.extra_args`` (the plugin's
per-request override), so one engine serves evicting and non-evicting rollouts alike. Log-probs
are vLLM's ``processed_logprobs`` (after temperature and logits processors, as TRL asks).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from memento.config import MementoConfig, default_mask_delimiters

MULTIPROCESSING_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"


@dataclass
class EngineRollout:
    """One completion: sampled ids, vLLM's log-prob of each (processed), the text with special tokens."""

    prompt_ids: list[int]
    token_ids: list[int]
    logprobs: list[float]
    text: str


@dataclass
class CallStats:
    """One `generate` call: wall seconds, peak KV blocks in use, KV blocks the plugin gave back."""

    seconds: float
    rollouts: int
    peak_blocks: int
    blocks_released: int
    block_size: int


def retie_lm_head(model: torch.nn.Module) -> None:
    """After a reload of a model with tied embeddings: the LM head takes the new embedding again.

    vLLM's layerwise reload receives no ``lm_head.weight`` for such a model (the loader skips it) and
    puts the head's old kernel tensors back (on CPU, a prepacked copy of the old embedding).
    """
    head = getattr(model, "lm_head", None)
    embed = getattr(getattr(model, "model", None), "embed_tokens", None)
    if head is None or embed is None:
        raise RuntimeError(f"memento: cannot re-tie the LM head of {type(model).__name__} after a weight reload")
    head.weight = embed.weight
    method = getattr(head, "quant_method", None)
    if method is not None:
        method.process_weights_after_loading(head)


class RolloutEngine:
    """`vllm.LLM` for a local checkpoint, engine core in this process, memento plugin on.

    Args:
        model: local Hugging Face checkpoint directory (memento tokens in its tokenizer).
        dtype: weights' dtype in vLLM ("float32" for exact comparisons, "auto": the checkpoint's).
        seed: the engine's sampling seed (requests carry none: per-request seeds crash vLLM's CPU
            build on preemption).
        engine_arguments: more `vllm.LLM` keyword arguments (e.g. ``gpu_memory_utilization``,
            ``max_model_len``, ``num_gpu_blocks_override``).
    """

    def __init__(self, model: str | Path, *, dtype: str = "auto", seed: int = 0, **engine_arguments: Any) -> None:
        import json

        path = Path(model)
        model_type = json.loads((path / "config.json").read_text()).get("model_type", "")
        # the engine default never evicts: every request states its own config
        default = MementoConfig(keep_last_n_blocks=-1, mask_delimiters=default_mask_delimiters(model_type))
        os.environ[MULTIPROCESSING_ENV] = "0"  # the engine core (scheduler, worker, model) in this process
        from memento.vllm.engine import offline_llm, set_environment
        from memento.vllm.plugin import register

        set_environment(default)
        register()  # vLLM loads plugins once per process: install the hooks even if that happened before
        arguments = {"enforce_eager": True, "gpu_memory_utilization": 0.3, **engine_arguments}
        self.llm = offline_llm(path, default, dtype=dtype, seed=seed, logprobs_mode="processed_logprobs", **arguments)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        self.weight_loads = 0

    @property
    def scheduler(self) -> Any:
        """The engine core's `MementoScheduler` (counts blocks released and peak blocks in use)."""
        return self.llm.llm_engine.engine_core.engine_core.scheduler

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        config: MementoConfig,
        *,
        temperature: float,
        max_new_tokens: int,
        top_p: float = 1.0,
        top_k: int = 0,
    ) -> tuple[list[EngineRollout], CallStats]:
        """One completion per prompt under `config` (temperature 0: greedy), with each token's log-prob."""
        from memento.vllm.state import REQUEST_KEY, describe
        from vllm import SamplingParams

        params = [
            SamplingParams(
                temperature=temperature,
                top_p=top_p,
                top_k=top_k if top_k > 0 else -1,
                max_tokens=max(1, min(max_new_tokens, self.max_model_len - len(ids))),
                logprobs=0,  # the sampled token's own log-prob
                skip_special_tokens=False,
                extra_args={REQUEST_KEY: describe(config)},
            )
            for ids in prompt_ids
        ]
        scheduler = self.scheduler
        released = scheduler.memento_blocks_released
        scheduler.memento_peak_blocks_in_use = 0
        start = time.perf_counter()
        outputs = self.llm.generate([{"prompt_token_ids": list(ids)} for ids in prompt_ids], params, use_tqdm=False)
        seconds = time.perf_counter() - start
        rollouts = []
        for output, ids in zip(outputs, prompt_ids, strict=True):
            completion = output.outputs[0]
            tokens = list(completion.token_ids)
            logprobs = [float(entry[token].logprob) for entry, token in zip(completion.logprobs, tokens, strict=True)]
            rollouts.append(EngineRollout(list(ids), tokens, logprobs, completion.text))
        stats = CallStats(
            seconds=seconds,
            rollouts=len(rollouts),
            peak_blocks=scheduler.memento_peak_blocks_in_use,
            blocks_released=scheduler.memento_blocks_released - released,
            block_size=scheduler.cache_config.block_size,
        )
        return rollouts, stats

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Replace the model's weights in place (Hugging Face names, checkpoint format) between calls.

        vLLM's ``reload_weights`` re-runs each layer's post-load processing (CPU kernel prepacking,
        fused q/k/v and gate/up layouts), so the next forward uses the new weights. The plugin's
        per-request state lives in the scheduler and the model runner, apart from the weights.
        """
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(list(weights))})
        if getattr(self.llm.llm_engine.model_config.hf_config, "tie_word_embeddings", False):
            self.llm.apply_model(retie_lm_head)
        self.llm.reset_prefix_cache()
        self.weight_loads += 1

    def load_model(self, model: torch.nn.Module) -> None:
        """Load a transformers model's parameters (the trainer's policy) into the engine."""
        with torch.no_grad():
            self.load_weights((name, parameter.detach()) for name, parameter in model.named_parameters())

    def close(self) -> None:
        """Shut the engine down (frees its KV cache)."""
        import gc

        self.llm.llm_engine.engine_core.shutdown()
        del self.llm
        gc.collect()

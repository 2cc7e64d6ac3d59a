"""The `vllm` backend: our plugin in an offline `vllm.LLM` (imported only when used).

The engine starts with the memento scheduler and no eviction as its default; every request
carries its own config in ``SamplingParams.extra_args["block_masking_config"]`` (the plugin's
per-request override), so one engine runs every mode. A model without memento tokens (the
baseline) gets a plain engine.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memento.config import MementoConfig, default_mask_delimiters
from memento.eval.run.backends.base import BackendError, Sample, split_time
from memento.inference.sampling import SamplingOptions

DEFAULT_ENGINE_ARGUMENTS: dict[str, Any] = {"enforce_eager": True, "gpu_memory_utilization": 0.4, "seed": 0}


class VLLMBackend:
    """One offline engine for a local checkpoint; `engine_arguments` go to `vllm.LLM` as given."""

    name = "vllm"

    def __init__(
        self,
        model: str | Path,
        *,
        memento_tokens: bool = True,
        dtype: str = "auto",
        engine_arguments: dict[str, Any] | None = None,
    ) -> None:
        try:
            from memento.vllm.engine import offline_llm
        except ImportError as error:
            raise BackendError(f"the vllm backend needs vLLM (pip install 'memento[vllm]'): {error}") from None
        path = Path(model)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: not a local Hugging Face checkpoint directory (no config.json)")
        default = None
        if memento_tokens:
            model_type = json.loads((path / "config.json").read_text()).get("model_type", "")
            default = MementoConfig(keep_last_n_blocks=-1, mask_delimiters=default_mask_delimiters(model_type))
        arguments = {**DEFAULT_ENGINE_ARGUMENTS, "dtype": dtype, **(engine_arguments or {})}
        try:
            self.llm = offline_llm(path, default, **arguments)
        except ImportError as error:
            raise BackendError(f"the vllm backend needs vLLM (pip install 'memento[vllm]'): {error}") from None
        self.memento = memento_tokens
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len

    def generate(
        self, prompts: Sequence[str], sampling: SamplingOptions, config: MementoConfig | None, seeds: Sequence[int]
    ) -> list[Sample]:
        from memento.eval.run.replay import chat_prompt_ids
        from memento.vllm.state import REQUEST_KEY, describe
        from vllm import SamplingParams

        if config is not None and config.enable and not self.memento:
            raise BackendError("this model has no memento tokens: run it as --baseline-model")
        prompt_ids = [chat_prompt_ids(self.tokenizer, prompt) for prompt in prompts]
        extra = {REQUEST_KEY: describe(config or MementoConfig.disabled())} if self.memento else None
        params = [
            SamplingParams(
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k if sampling.top_k > 0 else -1,
                max_tokens=max(1, min(sampling.max_new_tokens or self.max_model_len, self.max_model_len - len(ids))),
                seed=None if sampling.temperature == 0 else int(seed),
                skip_special_tokens=False,
                extra_args=extra,
            )
            for ids, seed in zip(prompt_ids, seeds, strict=True)
        ]
        start = time.perf_counter()
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids], params, use_tqdm=False)
        share = split_time(time.perf_counter() - start, len(outputs))
        return [
            Sample(
                text=output.outputs[0].text,
                token_ids=list(output.outputs[0].token_ids),
                finish_reason=output.outputs[0].finish_reason,
                seconds=share,
                prompt_token_ids=list(output.prompt_token_ids or ids),
            )
            for output, ids in zip(outputs, prompt_ids, strict=True)
        ]

    def close(self) -> None:
        del self.llm
        gc.collect()

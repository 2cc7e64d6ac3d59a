"""The `hf` backend: `MementoGenerator` (transformers, real KV eviction), batched, one seed per sample."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from memento.config import MementoConfig
from memento.eval.run.backends.base import Sample, split_time
from memento.eval.run.replay import INERT_SPECIAL_IDS
from memento.format import SpecialIds
from memento.inference.sampling import SamplingOptions, position_limit


class HFBackend:
    """A local checkpoint on `device`; the tokenizer may lack the memento tokens only for plain generation."""

    name = "hf"

    def __init__(self, model: str | Path, *, dtype: str = "auto", device: str = "auto") -> None:
        from memento.inference.loading import load_model_and_tokenizer, resolve_device

        path = Path(model)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: not a local Hugging Face checkpoint directory (no config.json)")
        try:
            self.model, self.tokenizer = load_model_and_tokenizer(path, dtype=dtype, device=device)
        except ValueError as error:
            if "lacks the memento tokens" not in str(error):
                raise
            self.model, self.tokenizer = _load_plain(path, dtype, resolve_device(device))
        try:
            self.special_ids = SpecialIds.from_tokenizer(self.tokenizer)
        except ValueError:
            self.special_ids = None
        self.position_limit = position_limit(self.model.config)

    def generate(
        self, prompts: Sequence[str], sampling: SamplingOptions, config: MementoConfig | None, seeds: Sequence[int]
    ) -> list[Sample]:
        from memento.inference import MementoGenerator

        if config is not None and config.enable and self.special_ids is None:
            raise ValueError("this model's tokenizer has no memento tokens: run it as --baseline-model")
        special_ids = self.special_ids or INERT_SPECIAL_IDS
        generator = MementoGenerator(
            self.model, self.tokenizer, config or MementoConfig.disabled(), special_ids=special_ids
        )
        prompt_ids = generator.encode_prompts(list(prompts))
        # positions are never renumbered, so a response stops where the model's positions end (the
        # generator would cut it there too, warning once per batch)
        room = None if self.position_limit is None else self.position_limit - max(len(ids) for ids in prompt_ids)
        budget = sampling.max_new_tokens or room
        if budget is None:
            raise ValueError("the model's config gives no position limit: set --max-new-tokens")
        if room is not None:
            budget = max(1, min(budget, room))
        start = time.perf_counter()
        results = generator.generate(
            prompt_ids,
            max_new_tokens=budget,
            temperature=sampling.temperature,
            top_p=sampling.top_p if sampling.top_p < 1 else None,
            top_k=sampling.top_k or None,
            seeds=None if sampling.temperature == 0 else list(seeds),
        )
        share = split_time(time.perf_counter() - start, len(results))
        return [
            Sample(
                text=result.text,
                token_ids=list(result.token_ids),
                finish_reason=result.finish_reason,
                seconds=share,
                prompt_token_ids=list(result.prompt_ids),
                cache_peak_tokens=result.kv_tokens_peak,
            )
            for result in results
        ]

    def close(self) -> None:
        del self.model


def _load_plain(path: Path, dtype: str, device: object) -> tuple[object, object]:
    """A base model (no memento tokens) for plain generation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    torch_dtype = dtypes.get(dtype, "auto" if getattr(device, "type", "cpu") == "cuda" else torch.float32)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch_dtype)
    return model.to(device).eval(), tokenizer

"""The `openai` backend: any OpenAI-compatible chat endpoint, `memento serve` included.

Memento modes send their config as ``extra_body={"vllm_xargs": {"block_masking_config": JSON}}``
(the plugin's per-request override); a plain mode (the baseline) sends none. vLLM's extras ask for
the special tokens in the text (``skip_special_tokens: false``), top-k, and the token ids
(``return_token_ids``); an endpoint that does not return ids gets its text tokenized for the KV replay.
A server with a reasoning parser (`memento serve` runs vLLM's ``memento`` parser) splits the text into
``reasoning_content`` and ``content``; the sample's text is both again, as the model wrote them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from memento.config import MementoConfig
from memento.eval.benchmarks.prompts import chat_messages
from memento.eval.run.backends.base import BackendError, Sample, split_time
from memento.inference.sampling import SamplingOptions
from memento.openai_client import chat_completion, openai_client
from memento.vllm.state import REQUEST_KEY, describe  # plain Python: vLLM need not be installed here

RETRIES = 2
"""Retries per request: the client's own (timeouts, 429, 5xx), and of a success that is not a chat completion."""


class OpenAIBackend:
    """Chat completions from `model` at `base_url`, `concurrency` requests in flight."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 3600.0,
        memento: bool = True,
    ) -> None:
        self.client = openai_client(base_url, api_key=api_key, timeout=timeout, max_retries=RETRIES)
        self.model = model
        self.base_url = base_url
        self.concurrency = concurrency
        self.memento = memento

    def generate(
        self, prompts: Sequence[str], sampling: SamplingOptions, config: MementoConfig | None, seeds: Sequence[int]
    ) -> list[Sample]:
        extra: dict[str, Any] = {"skip_special_tokens": False, "return_token_ids": True}
        if sampling.top_k > 0:
            extra["top_k"] = sampling.top_k
        if self.memento and config is not None:
            extra["vllm_xargs"] = {REQUEST_KEY: describe(config)}

        def one(item: tuple[str, int]) -> tuple[Any, float]:
            prompt, seed = item
            began = time.perf_counter()
            request = {
                "model": self.model,
                "messages": chat_messages(prompt),
                "max_tokens": sampling.max_new_tokens,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "seed": None if sampling.temperature == 0 else int(seed),
                "extra_body": extra,
            }
            response, _ = chat_completion(self.client, request, retries=RETRIES)
            return response, time.perf_counter() - began

        start = time.perf_counter()
        try:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
                answers = list(pool.map(one, zip(prompts, seeds, strict=True)))
        except Exception as error:  # openai raises many types (connection, status, timeout)
            raise BackendError(f"{self.base_url} ({self.model}): {type(error).__name__}: {error}") from None
        share = split_time(time.perf_counter() - start, len(answers))
        return [_sample(response, share) for response, _ in answers]

    def close(self) -> None:
        self.client.close()


def _sample(response: Any, seconds: float) -> Sample:
    choice = response.choices[0]
    token_ids = getattr(choice, "token_ids", None)
    prompt_ids = getattr(response, "prompt_token_ids", None)
    return Sample(
        text=_text(choice.message, choice.finish_reason),
        token_ids=list(token_ids) if token_ids is not None else None,
        finish_reason=choice.finish_reason,
        seconds=seconds,
        prompt_token_ids=list(prompt_ids) if prompt_ids is not None else None,
    )


def _text(message: Any, finish_reason: str | None) -> str:
    """The completion's whole text: ``<think>`` reasoning ``</think>`` answer where a reasoning parser split it
    (its reasoning is what stood between the markers; a reply cut off inside the reasoning has no ``</think>``)."""
    from memento.markers import THINK_END, THINK_START

    content = message.content or ""
    extra = message.model_extra or {}
    reasoning = extra.get("reasoning_content", extra.get("reasoning"))
    if reasoning is None:
        return content
    closed = bool(content) or finish_reason != "length"
    return f"{THINK_START}{reasoning}{THINK_END if closed else ''}{content}"

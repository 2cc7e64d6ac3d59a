"""Fit a call's ``max_tokens`` to the server's context, so a small-context server is asked what it can answer.

vLLM refuses (HTTP 400) a request whose prompt plus ``max_tokens`` exceeds the model's context, and
reports that context as ``max_model_len`` in ``/v1/models``. When it is reported and a call might not
fit, the prompt is counted exactly by the server's own ``/tokenize`` (chat template included) and
``max_tokens`` is lowered to the room left. Servers that report no context are asked as before.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

TEMPLATE_MARGIN = 256
"""Tokens a chat template may add around the messages; below this margin no call is counted."""


class ContextTooSmall(ValueError):
    """The prompt alone fills the server's context; one line saying what to change."""


class ServerContext:
    """The served model's context length (asked once, lazily) and the exact fit of one call."""

    def __init__(self, client: Any, model: str) -> None:
        self._client = client  # openai.OpenAI
        self._model = model
        self._lock = threading.Lock()
        self._asked = False
        self._length: int | None = None

    @property
    def length(self) -> int | None:
        """``max_model_len`` of the model in ``/v1/models``, None when the server does not say (or fails)."""
        with self._lock:
            if not self._asked:
                self._asked = True
                self._length = self._ask()
            return self._length

    def _ask(self) -> int | None:
        try:
            models = self._client.with_options(max_retries=0).models.list().data
        except Exception:  # a server without /v1/models is asked as before; the call itself reports errors
            return None
        for model in models:
            if model.id == self._model:
                length = (model.model_extra or {}).get("max_model_len")
                return length if isinstance(length, int) and length > 0 else None
        return None

    def fit(self, messages: Sequence[dict[str, str]], max_tokens: int) -> int:
        """`max_tokens`, lowered to the room the prompt leaves in the server's context when it would not fit.

        Raises `ContextTooSmall` when the prompt leaves no room at all.
        """
        length = self.length
        if length is None:
            return max_tokens
        characters = sum(len(message.get("content") or "") for message in messages)
        if characters + TEMPLATE_MARGIN + max_tokens <= length:  # a token is at least a character
            return max_tokens
        prompt = self._count(messages)
        if prompt is None:
            return min(max_tokens, length)
        room = length - prompt
        if room < 1:
            raise ContextTooSmall(
                f"the prompt ({prompt} tokens) fills the server's whole context (max_model_len {length}): serve "
                "the model with a longer --max-model-len, or lower --block-tokens / --memento-tokens"
            )
        return min(max_tokens, room)

    def _count(self, messages: Sequence[dict[str, str]]) -> int | None:
        """The prompt's tokens by the server's ``/tokenize`` (vLLM's), None when it has none."""
        import httpx

        root = str(self._client.base_url).rstrip("/").removesuffix("/v1")
        body = {"model": self._model, "messages": list(messages), "add_generation_prompt": True}
        try:
            answer = httpx.post(f"{root}/tokenize", json=body, timeout=self._client.timeout)
            count = answer.json().get("count") if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        return count if isinstance(count, int) else None

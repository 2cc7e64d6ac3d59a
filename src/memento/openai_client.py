"""The one way the package opens the official `openai` client (data pipeline, eval's openai backend, prompted mode)."""

from __future__ import annotations

import os
from typing import Any


def openai_client(base_url: str, *, api_key: str | None = None, timeout: float, max_retries: int) -> Any:
    """`openai.OpenAI` for `base_url`; the key is `api_key`, else $OPENAI_API_KEY, else "none".

    Local OpenAI-compatible servers (`memento serve`, vLLM) ignore the key, but the client refuses
    to start without one. `timeout` is seconds per request; `max_retries` is the client's own
    retries (exponential backoff on 408/409/429/5xx, timeouts and dropped connections), 0 for none.
    """
    import openai

    key = api_key or os.environ.get("OPENAI_API_KEY") or "none"
    return openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=max_retries)

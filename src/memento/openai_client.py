"""The one way the package opens the official `openai` client (data pipeline, eval's openai backend, prompted mode)."""

from __future__ import annotations

import os
import random
import time
from typing import Any
from urllib.parse import urlsplit

from memento.errors import UsageError


def check_base_url(url: str, name: str = "--base-url") -> str:
    """`url` if it is an http(s) URL with a host; else a `UsageError` naming `name` (no request is ever tried:
    a URL without a scheme would otherwise be retried as a connection error until the retries run out)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
    except ValueError as error:
        raise UsageError(f"{name} {url!r}: not a valid URL ({error}); expected e.g. http://127.0.0.1:8000/v1") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{name} {url!r}: expected an http:// or https:// URL such as http://127.0.0.1:8000/v1")
    return url


def openai_client(base_url: str, *, api_key: str | None = None, timeout: float, max_retries: int) -> Any:
    """`openai.OpenAI` for `base_url`; the key is `api_key`, else $OPENAI_API_KEY, else "none".

    Local OpenAI-compatible servers (`memento serve`, vLLM) ignore the key, but the client refuses
    to start without one. `timeout` is seconds per request; `max_retries` is the client's own
    retries (exponential backoff on 408/409/429/5xx, timeouts and dropped connections), 0 for none.
    """
    import openai

    check_base_url(base_url)
    key = api_key or os.environ.get("OPENAI_API_KEY") or "none"
    return openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=max_retries)


class NotAChatCompletion(ValueError):
    """A success status whose body is not a chat completion (a proxy's or a login page); says what came back."""


def _what_came_back(raw: Any) -> str:
    response = raw.http_response
    content_type = response.headers.get("content-type") or "no content type"
    start = " ".join(response.text[:200].split())[:80]
    return f"the endpoint answered HTTP {response.status_code} ({content_type}), not a chat completion: {start!r}"


def chat_completion(client: Any, request: dict[str, Any], *, retries: int) -> tuple[Any, int]:
    """(the parsed `ChatCompletion`, retries taken) for one `chat.completions.create(**request)` on `client`.

    The client retries failed requests itself; a success whose body is not a chat completion (HTML
    from a proxy, say: the client would hand back the text) is asked again up to `retries` times with
    the client's backoff (0.5 s doubling to 8 s, jittered), then raises `NotAChatCompletion`.
    """
    from openai.types.chat import ChatCompletion

    taken = attempt = 0
    while True:
        raw = client.chat.completions.with_raw_response.create(**request)
        taken += raw.retries_taken
        response = raw.parse()
        if isinstance(response, ChatCompletion) and isinstance(getattr(response, "choices", None), list):
            return response, taken
        if attempt == retries:
            raise NotAChatCompletion(_what_came_back(raw))
        time.sleep(min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random()))
        attempt += 1
        taken += 1

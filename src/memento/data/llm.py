"""A JSON-answering chat client for any OpenAI-compatible endpoint, with retries and usage accounting.

Uses the official `openai` client (its own retries off, so the policy is ours and visible):
timeouts, connection errors, 429 and 5xx, and answers that are not the JSON asked for are
retried with exponential backoff; then `LLMFailure` says what went wrong last.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai

from memento.openai_client import openai_client

RETRYABLE = (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)


class LLMFailure(RuntimeError):
    """A call that kept failing after every retry."""


class MalformedAnswer(ValueError):
    """The model answered, but not with the JSON that was asked for."""


@dataclass
class Usage:
    """Calls and tokens spent (per trace, or summed)."""

    calls: int = 0
    failed_calls: int = 0  # calls that brought no usable answer (errors, malformed answers)
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.failed_calls += other.failed_calls
        self.retries += other.retries
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.errors += other.errors


def parse_json_object(content: str) -> dict[str, Any]:
    """The first JSON object in a model's answer (code fences and chatter around it are ignored)."""
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", content.strip(), flags=re.MULTILINE)
    start = text.find("{")
    if start < 0:
        raise MalformedAnswer(f"no JSON object in the answer: {content[:120]!r}")
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as error:
        raise MalformedAnswer(f"invalid JSON in the answer ({error.msg} at column {error.colno})") from None
    if not isinstance(value, dict):
        raise MalformedAnswer("the answer's JSON is not an object")
    return value


class LLMClient:
    """Ask for JSON, validate it, retry what is worth retrying.

    Args:
        base_url: OpenAI-compatible endpoint (``.../v1``).
        model: model name.
        api_key: key, or the OPENAI_API_KEY environment variable, or "none" for local servers.
        timeout: seconds per request.
        max_attempts: tries per call (1 = no retry).
        backoff: first wait in seconds; doubles each retry (with jitter), capped at 30 s.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_attempts: int = 5,
        backoff: float = 1.0,
        temperature: float = 0.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.model = model
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.temperature = temperature
        # the client's own retries off: ours also retry malformed answers, under one budget, each failure recorded
        self._client = openai_client(base_url, api_key=api_key, timeout=timeout, max_retries=0)
        self._random = random.Random(0)
        self._lock = threading.Lock()

    def ask_json(self, system: str, user: str, validate: Callable[[dict[str, Any]], Any], usage: Usage) -> Any:
        """One chat completion answered in JSON; `validate(parsed)` returns the value or raises MalformedAnswer."""
        last_error = ""
        for attempt in range(self.max_attempts):
            if attempt:
                usage.retries += 1
                with self._lock:
                    jitter = self._random.uniform(0.5, 1.0)
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 30.0) * jitter)
            try:
                response = self._client.chat.completions.create(
                    model=self.model,
                    messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                    temperature=self.temperature,
                )
                usage.calls += 1
                if response.usage is not None:
                    usage.prompt_tokens += response.usage.prompt_tokens or 0
                    usage.completion_tokens += response.usage.completion_tokens or 0
                content = response.choices[0].message.content or ""
                return validate(parse_json_object(content))
            except RETRYABLE as error:
                usage.calls += 1
                last_error = f"{type(error).__name__}: {error}"
            except MalformedAnswer as error:
                last_error = f"malformed answer: {error}"
            except openai.APIError as error:  # e.g. 400, 401, 404: asking again will not help
                usage.calls += 1
                usage.failed_calls += 1
                usage.errors.append(f"{type(error).__name__}: {error}")
                raise LLMFailure(f"not retried: {type(error).__name__}: {error}") from None
            usage.failed_calls += 1
            usage.errors.append(last_error)
        raise LLMFailure(f"gave up after {self.max_attempts} attempts; last error: {last_error}")

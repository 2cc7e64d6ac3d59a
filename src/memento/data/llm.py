"""A JSON-answering chat client for any OpenAI-compatible endpoint, with retries and usage accounting.

Uses the official `openai` client (its own retries off, so the policy is ours and visible):
timeouts, connection errors, 429 and 5xx, and answers that are not the JSON asked for (or not a
chat completion at all: a proxy's HTML page) are retried with exponential backoff; then `LLMFailure`
says what went wrong last.

Structured output (`StructuredOutput`): each request carries its answer's JSON schema as
``response_format`` (`memento.data.schemas`), so a constrained decoder (vLLM, SGLang, llama.cpp's
server, OpenAI) can only answer in that shape. Mode ``auto`` tries it and, when the endpoint
refuses it (400/422 with the schema, an answer without it), says so in one line and asks without
it for the rest of the run; ``on`` fails instead; ``off`` never sends it.
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai

from memento.data.schemas import AnswerSchema, MalformedAnswer
from memento.openai_client import NotAChatCompletion, chat_completion, openai_client

RETRYABLE = (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)
REFUSED_SCHEMA = (openai.BadRequestError, openai.UnprocessableEntityError)
"""What an endpoint that does not take ``response_format: json_schema`` answers it with."""
STRUCTURED_MODES = ("auto", "on", "off")

__all__ = ["LLMClient", "LLMFailure", "MalformedAnswer", "StructuredOutput", "Usage", "parse_json_object"]


class LLMFailure(RuntimeError):
    """A call that kept failing after every retry."""


class StructuredOutput:
    """Whether requests carry their JSON schema; shared by the clients of one run (thread-safe).

    `mode` auto: send it until the endpoint refuses it once, then never again (one line to `notify`);
    on: always send it; off: never.
    """

    def __init__(self, mode: str = "auto", *, notify: Callable[[str], None] | None = None) -> None:
        if mode not in STRUCTURED_MODES:
            raise ValueError(f"structured output mode must be one of {', '.join(STRUCTURED_MODES)}, got {mode!r}")
        self.mode = mode
        self.refusal: str | None = None  # the endpoint's answer when it refused the schema (auto only)
        self._notify = notify or (lambda line: print(line, file=sys.stderr, flush=True))
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.mode == "on" or (self.mode == "auto" and self.refusal is None)

    def refused(self, error: str) -> None:
        """The endpoint refused a schema that it answered without: stop sending it (said once)."""
        with self._lock:
            if self.refusal is not None:
                return
            self.refusal = error
        self._notify(
            f"structured output: the endpoint refused response_format json_schema ({error}); "
            "asking for JSON in the prompt only for the rest of the run"
        )

    def describe(self) -> str:
        """One phrase for the run's report."""
        if self.mode == "off":
            return "off (--structured-output off)"
        if self.refusal is not None:
            return f"off for this run: the endpoint refused it ({self.refusal})"
        return "on (response_format json_schema, strict)"


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
        temperature: sampling temperature.
        max_tokens: cap on each answer's tokens (None: the endpoint's default).
        structured: structured-output state (share one between the clients of a run); default auto.
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
        max_tokens: int | None = None,
        structured: StructuredOutput | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        self.model = model
        self.max_tokens = max_tokens
        self.structured = structured or StructuredOutput("auto")
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.temperature = temperature
        # the client's own retries off: ours also retry malformed answers, under one budget, each failure recorded
        self._client = openai_client(base_url, api_key=api_key, timeout=timeout, max_retries=0)
        self._random = random.Random(0)
        self._lock = threading.Lock()

    def ask_json(
        self, system: str, user: str, answer: AnswerSchema | Callable[[dict[str, Any]], Any], usage: Usage
    ) -> Any:
        """One chat completion answered in JSON: `answer` is the schema asked for (or a bare check);
        its `parse` returns the value or raises MalformedAnswer."""
        parse = answer.parse if isinstance(answer, AnswerSchema) else answer
        last_error = ""
        for attempt in range(self.max_attempts):
            if attempt:
                usage.retries += 1
                with self._lock:
                    jitter = self._random.uniform(0.5, 1.0)
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 30.0) * jitter)
            schema = answer if isinstance(answer, AnswerSchema) and self.structured.enabled else None
            try:
                response = self._complete(system, user, schema, usage)
                content = response.choices[0].message.content or ""
                try:
                    return parse(parse_json_object(content))
                except MalformedAnswer as error:
                    if response.choices[0].finish_reason == "length":
                        raise MalformedAnswer(f"{error} (the answer hit the token cap: raise --max-tokens)") from None
                    raise
            except RETRYABLE as error:
                usage.calls += 1
                last_error = f"{type(error).__name__}: {error}"
            except MalformedAnswer as error:
                last_error = f"malformed answer: {error}"
            except NotAChatCompletion as error:  # a proxy's page, say: asked again like a malformed answer
                usage.calls += 1
                last_error = f"malformed answer: {error}"
            except openai.APIError as error:  # e.g. 400, 401, 404: asking again will not help
                usage.calls += 1
                usage.failed_calls += 1
                usage.errors.append(f"{type(error).__name__}: {error}")
                hint = ""
                if schema is not None and self.structured.mode == "on" and isinstance(error, REFUSED_SCHEMA):
                    hint = " (with --structured-output on: does the endpoint take response_format json_schema?)"
                raise LLMFailure(f"not retried: {type(error).__name__}: {error}{hint}") from None
            usage.failed_calls += 1
            usage.errors.append(last_error)
        raise LLMFailure(f"gave up after {self.max_attempts} attempts; last error: {last_error}")

    def _complete(self, system: str, user: str, schema: AnswerSchema | None, usage: Usage) -> Any:
        """One request (with `schema` as response_format when given); its usage counted. In auto mode
        a request refused with the schema is sent again without it, and the refusal remembered."""
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": self.temperature,
        }
        if self.max_tokens is not None:
            request["max_tokens"] = self.max_tokens
        try:
            formatted = {**request, **({"response_format": schema.response_format()} if schema else {})}
            response, _ = chat_completion(self._client, formatted, retries=0)  # retried by ask_json
        except REFUSED_SCHEMA as error:
            if schema is None or self.structured.mode != "auto":
                raise
            usage.calls += 1
            usage.failed_calls += 1
            reason = f"{type(error).__name__}: {error}".splitlines()[0][:200]
            usage.errors.append(reason)
            response, _ = chat_completion(self._client, request, retries=0)  # a refusal of the request itself raises
            self.structured.refused(reason)
        usage.calls += 1
        if response.usage is not None:
            usage.prompt_tokens += response.usage.prompt_tokens or 0
            usage.completion_tokens += response.usage.completion_tokens or 0
        return response

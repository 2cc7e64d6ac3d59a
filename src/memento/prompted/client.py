"""One chat completion at a time against any OpenAI-compatible endpoint, with its token bill.

Retries are the official client's own: 408/409/429/5xx answers, timeouts and connection errors
(a connection dropped mid-response included) are retried `max_retries` times with exponential
backoff (0.5 s doubling to 8 s, jittered; a server's Retry-After is honoured), and so is a success
whose body is not a chat completion (`memento.openai_client.chat_completion`). The number of
retries each call took is read from the client's raw response. One `ChatClient` is shared by
every thread of a run (the underlying HTTP client is thread-safe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import openai

from memento.openai_client import NotAChatCompletion, chat_completion, openai_client
from memento.prompted.context import ContextTooSmall, ServerContext

Message = dict[str, str]


class EndpointError(RuntimeError):
    """A call that failed for good (retries spent, or an error not worth retrying); one line."""


@dataclass(frozen=True)
class Completion:
    """One chat completion and what it cost.

    `prompt_tokens` / `completion_tokens` are the server's `usage`; when a server sends none they
    are approximated (about 4 characters a token) and `approximate` is True.
    """

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    retries: int
    approximate: bool = False

    @property
    def stopped(self) -> bool:
        """The model ended the reply itself (not cut off by max_tokens)."""
        return self.finish_reason != "length"

    @property
    def context_tokens(self) -> int:
        """Tokens in the model's context at the end of this call: prompt + completion."""
        return self.prompt_tokens + self.completion_tokens


def _approximate_tokens(text: str) -> int:
    from memento.counting import ApproximateTokenizer  # imports torch: only for servers without usage

    return len(ApproximateTokenizer().encode(text))


class ChatClient:
    """The official `openai` client with our sampling options; `complete()` is thread-safe."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 600.0,
        max_retries: int = 6,
        temperature: float = 0.0,
        top_p: float | None = None,
    ) -> None:
        self.model = model
        self.temperature = temperature
        self.top_p = top_p
        self.max_retries = max_retries
        self._client = openai_client(base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
        self.context = ServerContext(self._client, model)

    def complete(self, messages: Sequence[Message], *, max_tokens: int, stop: Sequence[str] = ()) -> Completion:
        """One chat completion of at most `max_tokens` tokens (fewer where the server's context has less room
        left, `ServerContext.fit`); raises `EndpointError` when it fails for good."""
        try:
            max_tokens = self.context.fit(messages, max_tokens)
        except ContextTooSmall as error:
            raise EndpointError(str(error)) from None
        request: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": self.temperature,
        }
        if self.top_p is not None:
            request["top_p"] = self.top_p
        if stop:
            request["stop"] = list(stop)
        try:
            response, retries = chat_completion(self._client, request, retries=self.max_retries)
        except NotAChatCompletion as error:
            raise EndpointError(f"{error} (asked {self.max_retries + 1} times)") from None
        except openai.APIStatusError as error:
            raise EndpointError(f"the endpoint answered {error.status_code}: {_error_message(error)}") from None
        except openai.APITimeoutError:
            raise EndpointError("the endpoint timed out on every try") from None
        except openai.APIConnectionError as error:
            raise EndpointError(f"cannot reach the endpoint ({error.__cause__ or error})") from None
        except (openai.APIError, ValueError) as error:  # a 200 whose body is not a chat completion
            raise EndpointError(f"the endpoint's answer is not a chat completion ({error})") from None
        if not response.choices:
            raise EndpointError("the endpoint answered with no choices")
        choice = response.choices[0]
        text = choice.message.content or ""
        usage = response.usage
        if usage is not None and usage.prompt_tokens is not None and usage.completion_tokens is not None:
            prompt_tokens, completion_tokens, approximate = usage.prompt_tokens, usage.completion_tokens, False
        else:
            prompt_tokens = _approximate_tokens("\n".join(m["content"] for m in messages))
            completion_tokens, approximate = _approximate_tokens(text), True
        return Completion(
            text=text,
            finish_reason=choice.finish_reason or "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            retries=retries,
            approximate=approximate,
        )


def _error_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(error.message)

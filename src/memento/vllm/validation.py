"""Per-request ``block_masking_config`` checked at admission, before the request reaches the engine.

vLLM 0.32 calls each custom logits processor's `validate_params` classmethod on every request's
`SamplingParams` in the frontend (`v1/engine/input_processor.py`); a `VLLMValidationError` there
becomes an HTTP 400 in the OpenAI error shape (``param`` names the field) and the engine never
sees the request. `RequestValidator` is that hook and nothing else: it leaves logits unchanged.
Without it, a bad config would raise inside the engine core's scheduler and end the engine.

A streamed request reaches that hook only once its response has begun (HTTP 200, then an error
event in the stream); `ValidateStreamedRequests`, a middleware of vLLM's server, runs the same
check on the request's body first, so a streamed request with a bad config gets the same 400.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import torch
from vllm.exceptions import VLLMValidationError
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor

from memento.config import MementoConfigError
from memento.vllm.state import REQUEST_KEY, engine_config, request_config

REQUEST_FIELD = f"vllm_xargs.{REQUEST_KEY}"
"""How a client names the option: ``extra_body={"vllm_xargs": {"block_masking_config": "<json>"}}``."""


def validate_request(params: Any) -> None:
    """Raise `VLLMValidationError` (HTTP 400) naming the field and the reason when a request's config is unusable."""
    try:
        config = request_config(getattr(params, "extra_args", None), engine_config())
    except MementoConfigError as error:  # its message already reads "block_masking_config.<field>: <reason>"
        parameter = f"vllm_xargs.{error.args[0].split(':', 1)[0]}"
        raise VLLMValidationError(f"vllm_xargs.{error}", parameter=parameter) from None
    except ValueError as error:
        raise VLLMValidationError(f"{REQUEST_FIELD}: {error}", parameter=REQUEST_FIELD) from None
    if config is not None and config.restart_mode and getattr(params, "prompt_logprobs", None) is not None:
        raise VLLMValidationError(
            f"{REQUEST_FIELD}: restart_mode cannot return prompt_logprobs (a memento in the prompt is computed "
            "twice, with and without its block)",
            parameter="prompt_logprobs",
        )


STREAMED_ROUTES = ("/v1/chat/completions", "/v1/completions")
"""The OpenAI routes whose requests may carry ``vllm_xargs`` and ask for a stream."""


def streamed_request_error(body: bytes) -> Any:
    """vLLM's `ErrorResponse` (a 400) for a streamed request body whose memento config is unusable, else None."""
    try:
        request = json.loads(body)
    except ValueError:
        return None  # not JSON: vLLM answers it itself
    if not isinstance(request, dict) or not request.get("stream") or not isinstance(request.get("vllm_xargs"), dict):
        return None
    try:
        validate_request(SimpleNamespace(extra_args=request["vllm_xargs"], prompt_logprobs=None))
    except VLLMValidationError as error:
        from vllm.entrypoints.serve.exception_handling.error_response import create_error_response

        return create_error_response(error)
    return None


class ValidateStreamedRequests:
    """ASGI middleware (vLLM's ``--middleware``): a streamed request's config is checked before its response starts."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in STREAMED_ROUTES:
            await self.app(scope, receive, send)
            return
        messages = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        error = streamed_request_error(b"".join(m.get("body", b"") for m in messages))
        if error is not None:
            from fastapi.responses import JSONResponse

            await JSONResponse(error.model_dump(), status_code=error.error.code)(scope, receive, send)
            return
        unread = iter(messages)

        async def replay() -> dict[str, Any]:
            return next(unread, None) or await receive()

        await self.app(scope, replay, send)


class RequestValidator(LogitsProcessor):
    """vLLM's admission hook for the memento options of each request; a no-op on logits."""

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        validate_request(sampling_params)

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        pass

    def is_argmax_invariant(self) -> bool:
        return True

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        pass

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

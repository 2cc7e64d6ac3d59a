"""ASGI middleware of `memento serve` (vLLM's ``--middleware``): the response fields memento clients read.

- ``reasoning_content``: vLLM 0.32 returns a reasoning parser's output in ``message.reasoning`` (and
  ``delta.reasoning``); the name reasoning clients (and DeepSeek's API) use is ``reasoning_content``.
  Every chat message and delta that has ``reasoning`` gets ``reasoning_content`` beside it, same value.
- the per-request config of a streamed request is checked before its stream starts
  (`memento.vllm.validation.ValidateStreamedRequests`, wrapped here);
- ``usage.memento``: the request's eviction figures (`memento.vllm.telemetry.RequestFigures`), which
  leave vLLM's engine in ``kv_transfer_params``; moved into ``usage`` (non-streamed responses).

Bodies are rewritten as they pass (a streamed one event by event); anything else goes through untouched.
"""

from __future__ import annotations

import json
from typing import Any

from memento.vllm.telemetry import RESPONSE_KEY

PATHS = ("/v1/chat/completions", "/v1/completions")


def rewrite(payload: Any) -> Any:
    """One response object (or streamed chunk) with the memento fields; others unchanged."""
    if not isinstance(payload, dict):
        return payload
    for choice in payload.get("choices") or ():
        for key in ("message", "delta"):
            part = choice.get(key) if isinstance(choice, dict) else None
            if isinstance(part, dict) and "reasoning" in part:
                part["reasoning_content"] = part["reasoning"]
    params = payload.get("kv_transfer_params")
    if isinstance(params, dict) and RESPONSE_KEY in params:
        figures = params.pop(RESPONSE_KEY)
        if not params:
            payload.pop("kv_transfer_params")
        if isinstance(payload.get("usage"), dict):
            payload["usage"][RESPONSE_KEY] = figures
    return payload


def _rewrite_json(body: bytes) -> bytes:
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    return json.dumps(rewrite(payload), ensure_ascii=False).encode()


def _rewrite_event_line(line: bytes) -> bytes:
    if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
        return line
    ending = line[len(line.rstrip(b"\r\n")) :]
    return b"data: " + _rewrite_json(line[6:].rstrip(b"\r\n")) + ending


class MementoResponses:
    """Pure ASGI middleware (streaming-safe): rewrites JSON and server-sent-event bodies of completions.

    It wraps `memento.vllm.validation.ValidateStreamedRequests` (one ``--middleware`` for both: vLLM's parser
    warns about a repeated flag).
    """

    def __init__(self, app: Any) -> None:
        from memento.vllm.validation import ValidateStreamedRequests

        self.app = ValidateStreamedRequests(app)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("path") not in PATHS:
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = {"kind": None, "buffer": b"", "start": None}

        async def wrapped_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                content_type = headers.get(b"content-type", b"")
                state["kind"] = (
                    "events"
                    if content_type.startswith(b"text/event-stream")
                    else "json"
                    if content_type.startswith(b"application/json")
                    else None
                )
                if state["kind"] is None:
                    await send(message)
                    return
                # the body's length changes: drop content-length (ASGI servers then chunk or set it)
                message = {**message, "headers": [(k, v) for k, v in message["headers"] if k != b"content-length"]}
                if state["kind"] == "json":
                    state["start"] = message  # sent with the whole body, once its length is known
                    return
                await send(message)
                return
            if message["type"] != "http.response.body" or state["kind"] is None:
                await send(message)
                return
            state["buffer"] += message.get("body", b"")
            more = message.get("more_body", False)
            if state["kind"] == "json":
                if more:
                    return
                body = _rewrite_json(state["buffer"])
                start = state["start"]
                start["headers"] = [*start["headers"], (b"content-length", str(len(body)).encode())]
                await send(start)
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            if more:  # hold back a line cut in two until its end arrives
                cut = state["buffer"].rfind(b"\n") + 1
                complete, state["buffer"] = state["buffer"][:cut], state["buffer"][cut:]
                if not complete:
                    return
            else:
                complete, state["buffer"] = state["buffer"], b""
            lines = complete.splitlines(keepends=True)
            body = b"".join(_rewrite_event_line(line) for line in lines)
            await send({"type": "http.response.body", "body": body, "more_body": more})

        await self.app(scope, receive, wrapped_send)

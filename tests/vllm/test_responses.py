"""`memento.vllm.responses.MementoResponses`: the ASGI rewrite of completion bodies, on bodies cut anywhere."""

from __future__ import annotations

import asyncio
import json

from memento.vllm.responses import MementoResponses


def _run(headers: list[tuple[bytes, bytes]], pieces: list[bytes], path: str = "/v1/chat/completions") -> bytes:
    """The body a client receives when an app sends `pieces` through the middleware."""

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index, piece in enumerate(pieces):
            await send({"type": "http.response.body", "body": piece, "more_body": index < len(pieces) - 1})

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": path}  # GET: the stream validator passes it through
    asyncio.run(MementoResponses(app)(scope, receive, send))
    (start,) = [m for m in sent if m["type"] == "http.response.start"]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    length = dict(start["headers"]).get(b"content-length")
    assert length is None or int(length) == len(body)
    return body


def test_a_json_body_in_pieces_gets_reasoning_content_and_usage_figures():
    payload = {
        "choices": [{"message": {"role": "assistant", "content": "5", "reasoning": "<|block_start|>a"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
        "kv_transfer_params": {"memento": {"evictions": 2}},
    }
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    body = json.loads(_run(headers, [data[:10], data[10:]]))
    assert body["choices"][0]["message"]["reasoning_content"] == "<|block_start|>a"
    assert body["usage"]["memento"] == {"evictions": 2} and "kv_transfer_params" not in body


def test_server_sent_events_cut_mid_line_are_rewritten_whole():
    events = [{"choices": [{"delta": {"reasoning": f"r{i}"}}]} for i in range(3)]
    stream = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    pieces = [stream[i : i + 7] for i in range(0, len(stream), 7)]
    body = _run([(b"content-type", b"text/event-stream; charset=utf-8")], pieces)
    lines = [line for line in body.split(b"\n") if line]
    assert lines[-1] == b"data: [DONE]"
    deltas = [json.loads(line[6:])["choices"][0]["delta"] for line in lines[:-1]]
    assert deltas == [{"reasoning": f"r{i}", "reasoning_content": f"r{i}"} for i in range(3)]


def test_other_routes_pass_untouched():
    data = b'{"choices": [{"message": {"reasoning": "x"}}]}'
    assert _run([(b"content-type", b"application/json")], [data], path="/v1/models") == data

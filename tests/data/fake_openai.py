"""A real HTTP server on 127.0.0.1 speaking OpenAI's chat-completions protocol, deterministic, with faults.

It stands in for the remote frontier LLM the data pipeline calls (the one thing that cannot
exist here), and, given a `responder`, for any chat model (prompted mode's scripted model, or a
real transformers model). Faults: queue names in `faults` ("500", "429", "timeout", "malformed",
"drop": the connection closes mid-response, "html": a 200 carrying a proxy's sign-in page `HTML_PAGE`)
to fail the next requests in order; any request mentioning FAIL_ALWAYS gets a 500; with
`refuse_schema`, any request carrying a ``response_format`` gets a 400, as an endpoint without
structured output answers. `bodies` keeps every request body received. A request mentioning `hold`
waits until `release` is set (at most `hold_timeout` s): a run can be stopped at a known point.
`boundary_score(boundary, next_sentence, request_number)` overrides the scorer; every boundary score
sent is logged in `answered` as (boundary, score).

A responder takes the request body and returns the reply's text, or a dict with `content`,
`finish_reason` ("stop" or "length") and optionally `prompt_tokens` / `completion_tokens`
(`usage` is then the responder's count; without them, characters / 4; `usage: None` omits it).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], "str | dict[str, Any]"]

HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Sign in - Corporate Proxy</title></head><body>Please sign in</body></html>"
)


class FakeOpenAI:
    def __init__(
        self,
        *,
        delay: float = 0.0,
        timeout_sleep: float = 1.5,
        hold: str | None = None,
        hold_timeout: float = 60.0,
        boundary_score: Callable[[int, str, int], float] | None = None,
        responder: Responder | None = None,
        port: int = 0,
        refuse_schema: bool = False,
    ) -> None:
        self.refuse_schema = refuse_schema
        self.faults: list[str] = []
        self.requests: list[str] = []  # kind of every request received
        self.bodies: list[dict[str, Any]] = []  # every request body received, in order
        self.responder = responder
        self.delay = delay
        self.timeout_sleep = timeout_sleep
        self.hold, self.hold_timeout, self.release = hold, hold_timeout, threading.Event()
        self.boundary_score = boundary_score
        self.answered: list[tuple[int, float]] = []
        self._lock = threading.Lock()
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def answer(self, system: str, user: str) -> str:
        if "segment a chain of thought" in system:
            boundaries = [int(k) for k in re.search(r"Score the boundaries: ([\d, ]+)", user).group(1).split(",")]
            sentences = dict(re.findall(r"^\[(\d+)\] (.*)$", user, flags=re.MULTILINE))
            scores = []
            with self._lock:
                number = len(self.requests)
            for k in boundaries:
                following = sentences.get(str(k + 1), "")
                if self.boundary_score is not None:
                    score = self.boundary_score(k, following, number)
                else:
                    score = 3 if following.startswith("Alternatively") else k % 2
                scores.append({"boundary": k, "score": score})
                with self._lock:
                    self.answered.append((k, score))
            return json.dumps({"scores": scores})
        if "You write mementos" in system:
            count = len(re.findall(r"^Block \d+:", user, flags=re.MULTILINE))
            prefix = "revised memento" if "Rewrite every memento" in user else "memento"
            return (
                "```json\n" + json.dumps({"mementos": [f"{prefix} {i + 1}: x = {i}" for i in range(count)]}) + "\n```"
            )
        if "You grade mementos" in system:
            mementos = re.findall(r"^Memento (\d+):\n(.*)$", user, flags=re.MULTILINE)
            grades = [
                {"block": int(n), "score": 9 if "revised" in text or n != "1" else 5, "feedback": "keep the value of x"}
                for n, text in mementos
            ]
            return "Here you go: " + json.dumps({"grades": grades})
        raise AssertionError(f"unexpected request: {system[:60]}")

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                # a client that timed out has closed the socket (and retries)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

            def _html(self) -> None:
                data = HTML_PAGE.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _drop(self, body: dict) -> None:
                """Announce the whole body, send half of it, then close the socket."""
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                user = "\n".join(str(m.get("content") or "") for m in request["messages"] if m["role"] == "user")
                with fake._lock:
                    fault = fake.faults.pop(0) if fake.faults else None
                    fake.requests.append(fault or "ok")
                    fake.bodies.append(request)
                time.sleep(fake.delay)
                if fake.hold is not None and fake.hold in user:
                    fake.release.wait(fake.hold_timeout)
                if fault == "timeout":
                    time.sleep(fake.timeout_sleep)
                if fault == "html":
                    return self._html()
                if fake.refuse_schema and "response_format" in request:
                    message = "response_format json_schema is not supported by this server"
                    return self._send(400, {"error": {"message": message, "type": "invalid_request_error"}})
                if "FAIL_ALWAYS" in user or fault == "500":
                    return self._send(500, {"error": {"message": "internal error", "type": "server_error"}})
                if fault == "429":
                    return self._send(429, {"error": {"message": "rate limited", "type": "rate_limit"}})
                if fault == "malformed":
                    reply: str | dict[str, Any] = "this is not json {"
                elif fake.responder is not None:
                    reply = fake.responder(request)
                else:
                    system, user = (m["content"] for m in request["messages"])
                    reply = fake.answer(system, user)
                reply = {"content": reply} if isinstance(reply, str) else reply
                content = reply["content"]
                prompt_tokens = reply.get("prompt_tokens", len(user) // 4)
                completion_tokens = reply.get("completion_tokens", len(content) // 4)
                body = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": 0,
                    "model": request["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": reply.get("finish_reason", "stop"),
                            "message": {"role": "assistant", "content": content},
                        }
                    ],
                }
                if reply.get("usage", True) is not None:
                    body["usage"] = {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    }
                if fault == "drop":
                    return self._drop(body)
                self._send(200, body)

        return Handler

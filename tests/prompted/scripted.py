"""A scripted chat model behind `FakeOpenAI`: it misbehaves on demand, round by round.

The problem text carries the script: ``script=ok,no_memento,endless`` says what each round's
reply does (after the script runs out the model answers), ``block=N`` how many tokens a block
holds, ``follow_up=empty`` makes the memento request come back empty. Tokens are counted like
`ApproximateTokenizer` (`usage` is the model's own count) and a block is N tokens " ab"; the
stop string is honoured as real servers do (cut before it, not included); max_tokens is honoured
(an endless block is exactly max_tokens long, finish_reason "length").
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from memento.counting import ApproximateTokenizer
from memento.format import BLOCK_END, BLOCK_START, SUMMARY_END, SUMMARY_START
from memento.prompted.prompts import load_prompts

PROMPTS = load_prompts()
FILLER = " ab"  # one approximate token
ROUND = re.compile(r"This is block (\d+) of")


def count(text: str) -> int:
    return len(ApproximateTokenizer().encode(text))


def problem_text(script: str = "", *, block: int = 20, follow_up: str = "ok", tag: str = "") -> str:
    """A problem carrying its script (and a tag making it unique)."""
    return f"Find x. script={script} block={block} follow_up={follow_up} tag={tag}."


class ScriptedModel:
    """The responder; `log` keeps (kind, prompt_tokens, completion_tokens) of every reply it gave."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.log: list[tuple[str, int, int]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            kind, content, finish = self.reply(request)
        finally:
            with self._lock:
                self.in_flight -= 1
        prompt_tokens = count("\n".join(m["content"] for m in request["messages"]))
        completion_tokens = count(content)
        with self._lock:
            self.log.append((kind, prompt_tokens, completion_tokens))
        return {
            "content": content,
            "finish_reason": finish,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        }

    def reply(self, request: dict[str, Any]) -> tuple[str, str, str]:
        """(what kind of request it was, the reply text, finish_reason)."""
        messages = request["messages"]
        user = messages[-1]["content"]
        problem = re.search(r"script=(\S*) block=(\d+) follow_up=(\w+)", "\n".join(m["content"] for m in messages))
        assert problem is not None, f"not a scripted problem: {user[:80]!r}"
        script = [step for step in problem.group(1).split(",") if step]
        block, follow_up = int(problem.group(2)), problem.group(3)
        max_tokens = request["max_tokens"]
        stop = request.get("stop") or []
        if len(messages) == 1:  # the plain call: all the reasoning in one go, then the answer
            text = "".join(FILLER * block for _ in script) + " so x = 7. \\boxed{7}"
            return "plain", *_limit(text, max_tokens)
        if user.startswith(PROMPTS.memento_request.split("{")[0]):
            text = "" if follow_up == "empty" else f"{SUMMARY_START}recovered memento{SUMMARY_END}"
            return "follow_up", *_stop_at(text, stop)
        if "There is no room for more reasoning" in user:
            notes = len(re.findall(r"^\d+\. ", user, re.MULTILINE))
            return "final", f"</think> x = {notes}", "stop"
        number = int(ROUND.search(user).group(1))
        step = script[number - 1] if number <= len(script) else "answer"
        body = FILLER * block
        memento = f"x is at least {number}"
        text = {
            "ok": f"{BLOCK_START}{body}{BLOCK_END}\n{SUMMARY_START}{memento}{SUMMARY_END}",
            "chatter": f"Sure! Let me think.{body}{BLOCK_END} ok {SUMMARY_START}{memento}{SUMMARY_END} bye",
            "two_blocks": f"{BLOCK_START}{body}{BLOCK_END}{SUMMARY_START}first{SUMMARY_END}"
            f"{BLOCK_START}{body}{BLOCK_END}{SUMMARY_START}second{SUMMARY_END}",
            "no_memento": f"{BLOCK_START}{body}{BLOCK_END}",
            "endless": FILLER * (max_tokens + 50),
            "memento_cut": f"{BLOCK_START}{body}{BLOCK_END}{SUMMARY_START}" + FILLER * (max_tokens + 50),
            "empty": "",
            "empty_answer": "</think>",
            "answer": f"</think> \\boxed{{{number}}}",
        }[step]
        content, finish = _stop_at(text, stop)
        if finish == "stop":
            content, finish = _limit(content, max_tokens)
        return step, content, finish


def _stop_at(text: str, stop: list[str]) -> tuple[str, str]:
    """Cut before the first stop string, as OpenAI-compatible servers do."""
    cuts = [text.find(s) for s in stop if s in text]
    return (text[: min(cuts)], "stop") if cuts else (text, "stop")


def _limit(text: str, max_tokens: int) -> tuple[str, str]:
    """Keep at most `max_tokens` tokens; "length" when that cut the text."""
    tokenizer = ApproximateTokenizer()
    ids = tokenizer.encode(text)
    if len(ids) <= max_tokens:
        return text, "stop"
    return tokenizer.decode(ids[:max_tokens]), "length"

"""What solving one problem produced and cost: `PromptedResult`, and the plain baseline `PlainResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memento.prompted.client import Completion

FALLBACK_KINDS: dict[str, str] = {
    "empty": "the round's reply was empty; the memento was requested in a follow-up call",
    "no_memento": "the model ended its reply without a memento; the memento was requested in a follow-up call",
    "cut_off": "the block ran into max_tokens before any memento; the memento was requested in a follow-up call",
    "memento_cut": "the memento ran into max_tokens; the memento was requested in a follow-up call",
    "empty_memento": "the follow-up call gave no memento either; the round left no note",
    "empty_answer": "the answer marker came with no answer; the final answer was requested",
    "max_rounds": "max_rounds blocks without an answer; the final answer was requested",
}
"""Every way the loop can step in for a model that did not follow the format, and what it did."""


@dataclass(frozen=True)
class Fallback:
    """One time the client stepped in: which `kind` (a key of `FALLBACK_KINDS`) in which round (1-based)."""

    kind: str
    round: int

    def __post_init__(self) -> None:
        if self.kind not in FALLBACK_KINDS:
            raise ValueError(f"unknown fallback kind {self.kind!r}; expected one of {', '.join(FALLBACK_KINDS)}")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "round": self.round}


@dataclass
class Bill:
    """Calls and tokens, summed over calls; `peak_context_tokens` is the largest prompt + completion of one call."""

    calls: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    peak_context_tokens: int = 0
    approximate: bool = False

    def charge(self, completion: Completion) -> None:
        """Add one call's tokens and retries."""
        self.calls += 1
        self.retries += completion.retries
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.peak_context_tokens = max(self.peak_context_tokens, completion.context_tokens)
        self.approximate = self.approximate or completion.approximate

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "retries": self.retries,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "peak_context_tokens": self.peak_context_tokens,
            "usage_approximate": self.approximate,
        }


@dataclass
class PlainResult:
    """One plain chain-of-thought call on the same problem: the baseline for context and tokens."""

    answer: str
    text: str
    finish_reason: str
    bill: Bill

    def to_json(self) -> dict[str, Any]:
        return {"answer": self.answer, "finish_reason": self.finish_reason, **self.bill.to_json()}


@dataclass
class PromptedResult:
    """One problem solved in prompted mode.

    Attributes:
        answer: the final answer text ("" when the model never gave one).
        mementos: the notes kept, in order (blocks were dropped).
        rounds: reasoning rounds (calls that asked for a block); follow-ups are not rounds.
        fallbacks: every time the client stepped in, in order.
        bill: calls, retries and tokens over every call of this problem (follow-ups included).
        plain: the plain baseline on the same problem, when it was run.
    """

    answer: str
    mementos: list[str]
    rounds: int
    fallbacks: list[Fallback] = field(default_factory=list)
    bill: Bill = field(default_factory=Bill)
    plain: PlainResult | None = None

    def to_json(self) -> dict[str, Any]:
        """The public result: `memento prompted --json` prints these keys (among others)."""
        return {
            "answer": self.answer,
            "rounds": self.rounds,
            "mementos": list(self.mementos),
            "peak_context_tokens": self.bill.peak_context_tokens,
            "total_prompt_tokens": self.bill.prompt_tokens,
            "total_completion_tokens": self.bill.completion_tokens,
            "fallbacks": len(self.fallbacks),
        }

    def to_record(self) -> dict[str, Any]:
        """`to_json()` plus the details: each fallback, calls, retries, and the plain baseline."""
        record = self.to_json()
        record["fallback_events"] = [f.to_json() for f in self.fallbacks]
        record["calls"] = self.bill.calls
        record["retries"] = self.bill.retries
        record["usage_approximate"] = self.bill.approximate
        if self.plain is not None:
            record["plain"] = self.plain.to_json()
        return record

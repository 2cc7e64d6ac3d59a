"""The `prompted` backend: `memento.prompted`'s client-side loop on any OpenAI-compatible chat endpoint.

A sample of mode `prompted` is one problem solved by `PromptedSolver` (blocks dropped from the
conversation, mementos kept); a sample of mode `plain` is the solver's one plain chain-of-thought
call on the same problem. Nothing is replayed: a sample's context figures are the endpoint's own
usage (`Sample.measured`): peak KV tokens is the largest prompt + completion of one call (prompted:
prompt + mementos + the open block; plain: the whole reply), tokens and prompt tokens are billed
over every call.

The response stored for a prompted sample is what the client kept: its mementos in the memento
format, then ``</think>`` and the answer (the blocks were dropped); a plain sample's is the reply.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from memento.eval.run.backends.base import BackendError, Sample
from memento.format import SUMMARY_END, SUMMARY_START, THINK_END
from memento.prompted import Bill, EndpointError, PlainResult, PromptedConfig, PromptedResult, PromptedSolver

if TYPE_CHECKING:
    from memento.eval.run.options import EvalOptions

PROMPTED_FLAGS = (
    "block_tokens",
    "memento_tokens",
    "answer_tokens",
    "max_rounds",
    "plain_max_tokens",
    "stop_at_memento_end",
    "prompts",
    "max_retries",
)
"""`PromptedConfig` fields `memento eval --backend prompted` takes as flags (their defaults live there)."""


def endpoint_settings(options: EvalOptions) -> dict[str, Any]:
    """The `PromptedConfig` fields `memento eval`'s own options give: endpoint, model, sampling, timeout.

    top_p 1 sends none (the server's default); top-k and per-sample seeds are not sent.
    """
    return {
        "base_url": options.base_url,
        "model": options.model,
        "api_key": options.api_key,
        "timeout": options.request_timeout,
        "temperature": options.temperature,
        "top_p": options.top_p if options.top_p < 1 else None,
    }


def solver_config(options: EvalOptions, **budgets: Any) -> PromptedConfig:
    """The solver of a run: `endpoint_settings(options)` and `budgets` (fields of `PROMPTED_FLAGS`)."""
    unknown = sorted(set(budgets) - set(PROMPTED_FLAGS))
    if unknown:
        raise TypeError(f"not prompted-backend settings: {unknown}")
    return PromptedConfig(**endpoint_settings(options), **budgets)


def _billed(bill: Bill) -> dict[str, Any]:
    """A solve's usage as record fields: billed prompt / completion tokens, peak context, calls, retries."""
    return {
        "prompt_tokens": bill.prompt_tokens,
        "tokens": bill.completion_tokens,
        "kv_peak_tokens": bill.peak_context_tokens,
        "calls": bill.calls,
        "retries": bill.retries,
        "usage_approximate": bill.approximate,
    }


def kept_text(result: PromptedResult) -> str:
    """What the client kept of a prompted solve: the mementos in the memento format, then the answer."""
    notes = "".join(f"{SUMMARY_START}{memento}{SUMMARY_END}\n" for memento in result.mementos)
    return f"{notes}{THINK_END}\n{result.answer}"


def prompted_sample(result: PromptedResult, seconds: float) -> Sample:
    """A prompted solve as a sample: ``finish_reason`` "length" when it ran out of rounds; its format is
    well formed when the client never stepped in (no fallback); its blocks are its rounds."""
    out_of_rounds = any(fallback.kind == "max_rounds" for fallback in result.fallbacks)
    return Sample(
        text=kept_text(result),
        token_ids=None,
        finish_reason="length" if out_of_rounds else "stop",
        seconds=seconds,
        measured={
            **_billed(result.bill),
            "blocks": result.rounds,
            "well_formed": not result.fallbacks,
            "rounds": result.rounds,
            "fallbacks": len(result.fallbacks),
            "fallback_events": [fallback.to_json() for fallback in result.fallbacks],
        },
    )


def plain_sample(result: PlainResult, seconds: float) -> Sample:
    """The plain call as a sample: its reply, and its one call's usage (peak = prompt + completion)."""
    return Sample(
        text=result.text,
        token_ids=None,
        finish_reason=result.finish_reason,
        seconds=seconds,
        measured=_billed(result.bill),
    )


class PromptedBackend:
    """One `PromptedSolver` shared by every thread of a run; `solve` is thread-safe."""

    name = "prompted"

    def __init__(self, config: PromptedConfig) -> None:
        self.solver = PromptedSolver(config)

    def settings(self) -> dict[str, Any]:
        """What changes its samples (for the run's manifest): budgets, stop string, the prompts' text."""
        config = self.solver.config
        return {
            "block_tokens": config.block_tokens,
            "memento_tokens": config.memento_tokens,
            "answer_tokens": config.answer_tokens,
            "max_rounds": config.max_rounds,
            "plain_budget": config.plain_budget,
            "stop_at_memento_end": config.stop_at_memento_end,
            "prompts": dataclasses.asdict(self.solver.templates),
        }

    def solve(self, mode: str, prompt: str) -> Sample:
        """One sample of `mode` ("prompted" or "plain") for the user turn `prompt`.

        Raises `BackendError` (one line) when the endpoint fails for good (its retries spent).
        """
        start = time.perf_counter()
        try:
            if mode == "prompted":
                return prompted_sample(self.solver.solve(prompt), time.perf_counter() - start)
            if mode == "plain":
                return plain_sample(self.solver.plain_call(prompt), time.perf_counter() - start)
        except EndpointError as error:
            raise BackendError(f"{self.solver.config.base_url} ({self.solver.config.model}): {error}") from None
        raise ValueError(f"the prompted backend has no mode {mode!r}")

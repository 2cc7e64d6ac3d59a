"""What every generation backend gives the runner: `Backend.generate` -> one `Sample` per prompt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from memento.config import MementoConfig
from memento.inference.sampling import SamplingOptions


@dataclass(frozen=True)
class Sample:
    """One generated response.

    `text` is the assistant turn with special tokens as generated (memento markers shown);
    `token_ids` / `prompt_token_ids` are the generated and prompt tokens when the backend knows
    them (None: the runner tokenizes the text). `finish_reason` is "stop" or "length".
    `seconds` is this sample's share of the wall time of the call that produced it (the call's
    time divided by its samples), so summing over samples gives generation time.
    `cache_peak_tokens` is the peak of the backend's real KV cache when it measures one.
    `measured` holds record figures the backend measured itself, which then replace the replay's
    (the prompted backend: the endpoint's usage; keys from `MEASURED_KEYS`).
    """

    text: str
    token_ids: list[int] | None
    finish_reason: str | None
    seconds: float
    prompt_token_ids: list[int] | None = None
    cache_peak_tokens: int | None = None
    measured: dict[str, Any] | None = None


MEASURED_KEYS = (
    "prompt_tokens",
    "tokens",
    "kv_peak_tokens",
    "blocks",
    "well_formed",
    "rounds",
    "fallbacks",
    "fallback_events",
    "calls",
    "retries",
    "usage_approximate",
)
"""Record fields a backend may measure itself (`Sample.measured`), replacing those the text and the
replay would give: billed prompt and completion tokens, peak context (the endpoint's prompt +
completion of its largest call), and the prompted loop's rounds, fallbacks, calls and retries."""

ENDPOINT = "endpoint"
"""`kv_from` of a record whose context figures the endpoint measured (`Sample.measured`), not the replay."""


class Backend(Protocol):
    """Generates responses for user turns (the backend applies the chat template).

    `config` None is plain generation (no memento attention); `seeds` has one seed per prompt.
    """

    name: str

    def generate(
        self, prompts: Sequence[str], sampling: SamplingOptions, config: MementoConfig | None, seeds: Sequence[int]
    ) -> list[Sample]: ...

    def close(self) -> None:
        """Release the model (the next model of the run may need the memory)."""
        ...


class BackendError(RuntimeError):
    """A backend that cannot start or answer; the message is one line for the user."""


def split_time(seconds: float, count: int) -> float:
    """Each sample's share of a call's wall time."""
    return seconds / max(count, 1)

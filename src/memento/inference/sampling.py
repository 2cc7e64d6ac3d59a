"""`SamplingOptions`: how many tokens to generate and how to pick them, validated in one place."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from memento.errors import UsageError

# Config attributes that hold the number of positions a model was built for, by model family.
_POSITION_LIMIT_NAMES = ("max_position_embeddings", "n_positions", "max_sequence_length")


@dataclass(frozen=True)
class SamplingOptions:
    """Decoding options of `MementoGenerator.generate` (`as_kwargs()` passes them on).

    `max_new_tokens` None fills the model's context: prompt + new tokens <= its positions.
    """

    max_new_tokens: int | None = field(
        default=None,
        metadata={"help": "new tokens per prompt at most (default: until the model's context is full)"},
    )
    temperature: float = field(default=0.0, metadata={"help": "softmax temperature; 0 = greedy"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass in (0, 1]; 1 = off"})
    top_k: int = field(default=0, metadata={"help": "sample among the k most likely tokens; 0 = off"})
    min_p: float = field(default=0.0, metadata={"help": "drop tokens below min_p x the top probability; 0 = off"})
    seed: int | None = field(default=0, metadata={"help": "sampling seed (None = a fresh random one)"})
    stop: tuple[str, ...] = field(default=(), metadata={"help": "stop string (repeatable); not included in the text"})

    def __post_init__(self) -> None:
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise UsageError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise UsageError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UsageError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
        if self.top_k < 0:
            raise UsageError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 <= self.min_p <= 1:
            raise UsageError(f"min_p must be in [0, 1] (0 = off), got {self.min_p}")
        for stop in self.stop:
            if not isinstance(stop, str) or not stop:
                raise UsageError(f"a stop string must be non-empty text, got {stop!r}")

    def fit_context(self, prompt_lengths: Sequence[int], positions: int | None) -> SamplingOptions:
        """A copy whose `max_new_tokens` is set and fits every prompt into `positions` (prompt + new <= positions).

        Raises `UsageError` naming the prompt when an explicit `max_new_tokens` (or the prompt alone)
        does not fit, as vLLM answers such a request with a 400.
        """
        if positions is None:
            if self.max_new_tokens is None:
                raise UsageError("the model's config gives no position limit: set max_new_tokens")
            return self
        longest = max(range(len(prompt_lengths)), key=lambda i: prompt_lengths[i])
        room = positions - prompt_lengths[longest]
        if room < 1:
            raise UsageError(
                f"prompt {longest + 1} has {prompt_lengths[longest]} tokens: the model has {positions} positions"
            )
        if self.max_new_tokens is None:
            return replace(self, max_new_tokens=room)
        if self.max_new_tokens > room:
            raise UsageError(
                f"prompt {longest + 1} has {prompt_lengths[longest]} tokens + max_new_tokens {self.max_new_tokens} > "
                f"the model's {positions} positions: max_new_tokens can be at most {room}"
            )
        return self

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `MementoGenerator.generate` / `.stream`."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "seed": self.seed,
            "stop": list(self.stop) or None,
        }


def position_limit(model_config: Any) -> int | None:
    """The number of positions the model was built for (`max_position_embeddings` or its family's name), or None."""
    text_config = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    for name in _POSITION_LIMIT_NAMES:
        value = getattr(text_config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None

"""What generation returns: one `GenerationResult` per sequence, `StreamEvent`s while streaming."""

from __future__ import annotations

from dataclasses import dataclass, field

from memento.attention import EvictedSpan


@dataclass(frozen=True)
class Eviction:
    """A span dropped from one sequence's cache: at decode `step` (0 = prefill), after the token at `position`."""

    step: int
    position: int
    span: EvictedSpan


@dataclass
class GenerationResult:
    """One generated sequence.

    `kv_trace[i]` is the number of tokens physically cached for this sequence after step i
    (step 0 is the prefill); `kv_tokens_peak` is the largest count, taken before each step's
    evictions (the ``<|summary_end|>`` step still holds its block). `seed` is the sampling seed,
    given or drawn: passing it back as `seed=` reproduces the run. `logprobs` (with
    ``return_logprobs``): per sampled token, its log-probability under the model's logits divided
    by the sampling temperature (1 when greedy), before logits processors and top-k/top-p/min-p:
    the quantity an RL trainer's policy forward recomputes (TRL divides by its temperature too).
    """

    prompt_ids: list[int]
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    kv_trace: list[int] = field(default_factory=list)
    evictions: list[Eviction] = field(default_factory=list)
    kv_tokens_peak: int = 0
    seed: int | None = None
    logprobs: list[float] | None = None


@dataclass(frozen=True)
class StreamEvent:
    """One sampled token of sequence `index`; `text` is the new text it adds (special tokens shown)."""

    index: int
    token_id: int
    text: str
    kv_tokens: int
    finish_reason: str | None = None

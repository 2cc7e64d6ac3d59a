"""`memento verify`'s comparison: vLLM's log-probs and greedy tokens against the HF reference (one attention rule).

The reference (`MementoGenerator.score`, the evicting cache) scores each sequence vLLM produced,
teacher-forced, so positions after a first disagreement are still compared. Log-probs must agree
within the dtype's tolerance; a greedy token must equal the reference's argmax wherever the
reference's top-2 margin exceeds twice that tolerance (closer than that, a difference within
tolerance can flip the choice). The same comparison of an unmasked run is the negative control.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from memento.config import MementoConfig
from memento.vllm.verify_script import FREE

MARGIN_FACTOR = 2.0
"""A greedy token is judged where the reference's top-2 log-prob margin exceeds this many tolerances."""

Run = tuple[list[int], list[float]]
"""One request's generated tokens and the log-probs of every token after the first (prompt, then generated)."""


@dataclass
class Agreement:
    """How vLLM's runs agree with the reference, over every config and sequence compared."""

    largest: float = 0.0  # largest |log p(vLLM) - log p(reference)|
    worst: str = ""  # where it is
    tokens_equal: bool = True  # every judged greedy token equals the reference's argmax
    tokens_compared: int = 0  # greedy tokens judged
    tokens_close: int = 0  # greedy tokens not judged: the reference's top-2 margin is within 2 tolerances
    evictions: int = 0  # spans evicted (prompt and decoding)
    decode_evictions: int = 0  # spans closed by a generated token


def logprob_difference(got: Sequence[float], expected: torch.Tensor, sequence: Sequence[int]) -> torch.Tensor:
    """|got - reference| per scored token: `expected` [len(sequence), vocab] log-probs -> [len(sequence) - 1].

    -inf on both sides agrees; any other non-finite difference (a NaN log-prob) is the worst there is.
    """
    targets = torch.tensor(sequence[1:])
    wanted = expected[:-1].gather(1, targets[:, None])[:, 0].cpu().float()
    observed = torch.tensor(list(got), dtype=torch.float32)
    return torch.where(observed == wanted, 0.0, (observed - wanted).abs().nan_to_num(nan=math.inf))


def judge_tokens(
    expected: torch.Tensor, generated: Sequence[int], script: Sequence[int], threshold: float
) -> tuple[int, int, int]:
    """(tokens differing, tokens judged, tokens too close to judge) among the freely decoded ones.

    `expected` [len(generated), vocab]: the reference's log-probs at each generated position.
    """
    top = expected.float().topk(2, dim=-1)
    clear = (top.values[:, 0] - top.values[:, 1]) > threshold
    argmax = top.indices[:, 0].tolist()
    differing = judged = close = 0
    for step, token in enumerate(generated):
        if step < len(script) and script[step] != FREE:
            continue  # forced, not chosen by the model
        if not bool(clear[step]):
            close += 1
            continue
        judged += 1
        differing += argmax[step] != token
    return differing, judged, close


def closings(tracker: Any, sequence: Sequence[int], start: int) -> tuple[int, int]:
    """(spans evicted, those closed at a position >= `start`) when `sequence` is fed to a fresh `BlockTracker`."""
    total = late = 0
    for position, token in enumerate(sequence):
        evicted = len(tracker.feed(token).evicted)
        total += evicted
        late += evicted if position >= start else 0
    return total, late


def rule_label(config: MementoConfig) -> str:
    """`mask_delimiters=...` and every other rule field that differs from the defaults (for `worst`)."""
    names = ["mask_delimiters"] + [
        f.name for f in fields(config) if f.name != "mask_delimiters" and getattr(config, f.name) != f.default
    ]
    return " ".join(f"{name}={getattr(config, name)}" for name in names)


def compare(
    reference: Any,
    tokenizer: Any,
    configs: Sequence[MementoConfig],
    prompts: Sequence[list[int]],
    scripts: Sequence[list[int]],
    runs: Sequence[Sequence[Run]],
    tolerance: float,
) -> tuple[Agreement, list[float]]:
    """The masked runs (one list per config) against the reference; the control (runs[-1], unmasked) against
    each config's reference: (agreement of the masked runs, the control's largest difference per config)."""
    from memento.attention import BlockTracker
    from memento.inference import MementoGenerator
    from memento.special_ids import SpecialIds

    agreement, control = Agreement(), []
    for config, config_runs in zip(configs, runs[: len(configs)], strict=True):
        generator = MementoGenerator(reference, tokenizer, config)
        ids = SpecialIds.from_tokenizer(tokenizer, config)
        for number, (prompt, script, (generated, logprobs)) in enumerate(
            zip(prompts, scripts, config_runs, strict=True)
        ):
            sequence = prompt + generated
            expected = _score(generator, sequence)
            difference = logprob_difference(logprobs, expected, sequence)
            position = int(difference.argmax())
            if float(difference[position]) > agreement.largest or not agreement.worst:
                agreement.largest = float(difference[position])
                agreement.worst = f"{rule_label(config)} sequence {number} position {position + 1}"
            differing, judged, close = judge_tokens(
                expected[len(prompt) - 1 : -1], generated, script, MARGIN_FACTOR * tolerance
            )
            agreement.tokens_equal = agreement.tokens_equal and differing == 0
            agreement.tokens_compared += judged
            agreement.tokens_close += close
            total, late = closings(BlockTracker(ids, config), sequence, len(prompt))
            agreement.evictions += total
            agreement.decode_evictions += late
        largest = 0.0
        for prompt, (generated, logprobs) in zip(prompts, runs[-1], strict=True):
            sequence = prompt + generated
            largest = max(largest, float(logprob_difference(logprobs, _score(generator, sequence), sequence).max()))
        control.append(largest)
    return agreement, control


def _score(generator: Any, sequence: list[int]) -> torch.Tensor:
    """The reference's log-probs [len(sequence), vocab] (float32) of `sequence` under the generator's config."""
    with torch.no_grad():
        return torch.log_softmax(generator.score(sequence, chunk_size=16).float(), dim=-1)

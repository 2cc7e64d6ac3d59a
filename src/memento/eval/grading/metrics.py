"""Accuracy and response metrics over N samples per problem (the paper's reporting).

* pass@1: the mean over problems of each problem's share of correct samples; its standard
  error is over problems: ``stdev(per-problem means, ddof=1) / sqrt(problems)`` (0 for one
  problem). Sampling noise within a problem is not added on top.
* pass@k: the unbiased estimator of Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)`` per
  problem, averaged over problems.
* maj@k: per problem, the first k samples vote with their answer class
  (`graders.answer_classes`: equal normalised strings, merged by math-verify for math); the
  class with most votes wins, a tie goes to the class voted first; the problem scores when the
  winner's first member is correct. Samples without an answer do not vote; no votes scores 0.
* format: a response is well formed when `memento.format.parse_text` accepts it, it reached
  ``</think>`` and it holds at least one block; blocks and mementos per response count the
  ``<|block_end|>`` and ``<|summary_end|>`` markers.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from memento.format import BLOCK_END, IM_END, SUMMARY_END, TraceFormatError, parse_text


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct)
    is correct: ``1 - prod_{i=n-c+1..n} (1 - k/i)``, the stable form of ``1 - C(n-c,k)/C(n,k)``."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def _check_problems(correct: Sequence[Sequence[bool]]) -> None:
    if not correct:
        raise ValueError("no problems")
    if any(len(samples) == 0 for samples in correct):
        raise ValueError("a problem with no samples")


def pass_at_1(correct: Sequence[Sequence[bool]]) -> tuple[float, float]:
    """(mean over problems of the share of correct samples, its standard error over problems)."""
    _check_problems(correct)
    means = [sum(samples) / len(samples) for samples in correct]
    stderr = statistics.stdev(means) / math.sqrt(len(means)) if len(means) > 1 else 0.0
    return statistics.fmean(means), stderr


def mean_pass_at_k(correct: Sequence[Sequence[bool]], k: int) -> float:
    """pass@k averaged over problems; every problem needs at least k samples."""
    _check_problems(correct)
    return statistics.fmean(pass_at_k(len(samples), sum(samples), k) for samples in correct)


def majority_correct(classes: Sequence[int | None], correct: Sequence[bool], k: int) -> bool:
    """Whether the majority answer among the first `k` samples of one problem is correct."""
    if len(classes) != len(correct):
        raise ValueError(f"{len(classes)} answer classes but {len(correct)} verdicts")
    if not 1 <= k <= len(classes):
        raise ValueError(f"k must be 1..{len(classes)}, got {k}")
    votes = Counter(c for c in classes[:k] if c is not None)
    if not votes:
        return False
    top = max(votes.values())
    first_voted = [c for c in classes[:k] if c is not None]
    winner = next(c for c in first_voted if votes[c] == top)
    return bool(correct[classes.index(winner)])


def maj_at_k(classes: Sequence[Sequence[int | None]], correct: Sequence[Sequence[bool]], k: int) -> float:
    """maj@k averaged over problems (see the module docstring)."""
    _check_problems(correct)
    if len(classes) != len(correct):
        raise ValueError(f"{len(classes)} problems of answer classes but {len(correct)} of verdicts")
    return statistics.fmean(majority_correct(c, v, k) for c, v in zip(classes, correct, strict=True))


def default_ks(samples: int) -> list[int]:
    """k values to report for N samples: 1, 2, 4, ... up to N, and N itself."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    ks = [2**power for power in range(samples.bit_length()) if 2**power <= samples]
    return ks if ks[-1] == samples else [*ks, samples]


def accuracy_summary(
    correct: Sequence[Sequence[bool]],
    classes: Sequence[Sequence[int | None]] | None = None,
    ks: Sequence[int] | None = None,
) -> dict[str, Any]:
    """``pass_at_1``, ``pass_at_1_stderr``, ``pass_at_k`` and (with `classes`) ``maj_at_k``,
    the last two keyed by k as text; ks default to `default_ks` of the fewest samples."""
    _check_problems(correct)
    ks = list(ks) if ks is not None else default_ks(min(len(samples) for samples in correct))
    mean, stderr = pass_at_1(correct)
    summary: dict[str, Any] = {
        "pass_at_1": mean,
        "pass_at_1_stderr": stderr,
        "pass_at_k": {str(k): mean_pass_at_k(correct, k) for k in ks},
    }
    if classes is not None:
        summary["maj_at_k"] = {str(k): maj_at_k(classes, correct, k) for k in ks}
    return summary


# ---------------------------------------------------------------------------------------------
# Responses


def well_formed(text: str) -> bool:
    """Parses as a memento trace, reached ``</think>``, and has at least one block."""
    text = text.rstrip()
    if text.endswith(IM_END):
        text = text[: -len(IM_END)]
    try:
        trace = parse_text(text)
    except TraceFormatError:
        return False
    return not trace.is_open and len(trace.blocks) > 0


def response_summary(
    texts: Sequence[str], tokens: Sequence[int] | None = None, answered: Sequence[bool] | None = None
) -> dict[str, float]:
    """Means over responses: ``format_ok``, ``blocks_mean``, ``mementos_mean``, and with their
    inputs ``tokens_mean`` (generated tokens) and ``answered`` (the grader found an answer)."""
    if not texts:
        raise ValueError("no responses")
    for name, values in (("tokens", tokens), ("answered", answered)):
        if values is not None and len(values) != len(texts):
            raise ValueError(f"{len(texts)} responses but {len(values)} {name}")
    summary = {
        "format_ok": statistics.fmean(well_formed(text) for text in texts),
        "blocks_mean": statistics.fmean(text.count(BLOCK_END) for text in texts),
        "mementos_mean": statistics.fmean(text.count(SUMMARY_END) for text in texts),
    }
    if tokens is not None:
        summary["tokens_mean"] = statistics.fmean(tokens)
    if answered is not None:
        summary["answered"] = statistics.fmean(answered)
    return summary

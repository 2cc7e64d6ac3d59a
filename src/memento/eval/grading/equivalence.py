"""Are two math answers the same? math-verify (SymPy) equivalence, or equal normalised strings.

This module runs math-verify in the calling process, whose timeouts use ``signal.alarm`` and
so work only on a main thread. Graders call it through `memento.eval.grading.verify_pool`, which runs
it on the main thread of worker processes under a hard per-answer deadline.
"""

from __future__ import annotations

import math
from typing import Any

from memento.eval.grading.answers import normalize_math_answer

DEFAULT_TIMEOUT_S = 5.0
"""Per-answer grading budget in seconds (the paper's checker uses 5 s)."""


def _parsed(answer: str, seconds: int) -> list[Any]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    return parse(
        "\\boxed{" + answer + "}",
        extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
        parsing_timeout=seconds,
    )


def equivalent_here(answer: str, gold: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """True when `answer` equals `gold` as normalised strings or as math-verify expressions.

    Both are parsed as the content of a ``\\boxed{}``. Each math-verify step (a parse, one
    comparison) is limited to ``ceil(timeout_s)`` seconds by SIGALRM: call on a main thread.
    """
    if not answer.strip() or not gold.strip():
        return False
    if normalize_math_answer(answer) == normalize_math_answer(gold):
        return True
    from math_verify import verify

    seconds = max(1, math.ceil(timeout_s))
    gold_parsed = _parsed(gold, seconds)
    answer_parsed = _parsed(answer, seconds)
    if not gold_parsed or not answer_parsed:
        return False
    return bool(verify(gold_parsed, answer_parsed, timeout_seconds=seconds))

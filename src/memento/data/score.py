"""Boundary scores 0-3 between consecutive sentences: from an LLM, or offline from discourse cues.

Score k rates the boundary between sentence k and k+1: 3 = a natural place to close a block
(a sub-task finished, a new approach begins), 0 = must not cut (mid-calculation, right after a
colon or '=', before a Therefore / Thus / Hence that continues the derivation).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from memento.data import schemas
from memento.data.llm import LLMClient, Usage

SCORING_SYSTEM = """You segment a chain of thought into blocks that a reader could summarise on their own.
You are given numbered sentences. For every boundary between two consecutive sentences, rate how good a
place it is to end a block, from 0 to 3:
3 = a clear unit of work ends here: an intermediate result is established, an approach is finished or
    abandoned, a verification concludes, and what follows starts something new.
2 = a reasonable break: a step is complete and the next sentence moves to a related new step.
1 = a weak break: the topic continues but a pause is possible.
0 = never cut here: in the middle of a calculation or derivation, right after a sentence ending with ':'
    or '=', or before a sentence opening with Therefore / Thus / Hence that continues the same argument.
Answer with JSON only: {"scores": [{"boundary": K, "score": S}, ...]} with one entry for each boundary K
you are asked about (boundary K lies between sentence K and sentence K+1)."""


def _scoring_request(sentences: Sequence[str], start: int) -> str:
    lines = [f"[{start + i}] {s.strip()}" for i, s in enumerate(sentences)]
    boundaries = ", ".join(str(start + i) for i in range(len(sentences) - 1))
    return "Sentences:\n" + "\n".join(lines) + f"\n\nScore the boundaries: {boundaries}."


def windows(count: int, size: int) -> list[tuple[int, int]]:
    """Sentence windows [start, stop) of `size` overlapping by one, so every boundary is in one window."""
    if size < 2:
        raise ValueError(f"window size must be >= 2, got {size}")
    spans, start = [], 0
    while start < count - 1:
        spans.append((start, min(start + size, count)))
        start += size - 1
    return spans


def score_with_llm(
    sentences: Sequence[str], client: LLMClient, *, window: int = 16, two_pass: bool = False, usage: Usage
) -> list[float]:
    """Scores for the n-1 boundaries, asked window by window; `two_pass` averages windows of 16 and 11."""
    sizes = (window, 11) if two_pass else (window,)
    passes = []
    for size in sizes:
        scores = [0.0] * max(len(sentences) - 1, 0)
        for start, stop in windows(len(sentences), size):
            expected = list(range(start, stop - 1))
            answer = client.ask_json(
                SCORING_SYSTEM, _scoring_request(sentences[start:stop], start), schemas.boundary_scores(expected), usage
            )
            for boundary, score in answer.items():
                scores[boundary] = score
        passes.append(scores)
    return [sum(values) / len(values) for values in zip(*passes, strict=True)] if passes else []


# ---------------------------------------------------------------------------------------------
# Offline scorer

_SHIFT = re.compile(
    r"^\s*(?:Alternatively|Wait|Hmm+|But wait|Another (?:approach|way|idea)|Let me (?:check|verify|double[- ]check|"
    r"re-?examine|think again|try (?:another|a different))|Let's (?:check|verify|try another)|Now,? (?:let's|let me)|"
    r"Next,|Okay,? (?:so|now|let's)|Alright|On the other hand|Actually,)\b",
    re.IGNORECASE,
)
_CONTINUES = re.compile(r"^\s*(?:Therefore|Thus|Hence|So\b|which|and\b|then\b)", re.IGNORECASE)
_RESULT = re.compile(
    r"(?:=\s*-?[\d.]+[^=]*$|\\boxed|answer is|we (?:get|have|obtain|find)|so the|is correct|checks out)", re.IGNORECASE
)


def score_offline(sentences: Sequence[str]) -> list[float]:
    """Deterministic scores from discourse cues: paragraph breaks, topic shifts ('Alternatively',
    'Wait', 'Let me check/verify', ...), completed results; 0 after ':' or '=' and before a
    continuing Therefore / Thus / Hence."""
    scores = []
    for current, following in itertools.pairwise(sentences):
        ending = current.rstrip()
        if ending.endswith((":", "=")) or _CONTINUES.match(following):
            scores.append(0.0)
            continue
        score = 0.0
        if current.endswith("\n\n") or re.search(r"\n\s*\n\s*$", current):
            score += 1.0
        if _SHIFT.match(following):
            score += 2.0
        if _RESULT.search(ending):
            score += 1.0
        scores.append(min(score, 3.0))
    return scores

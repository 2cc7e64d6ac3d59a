"""Mementos for blocks: an LLM compressor judged by an LLM and refined, or an offline extractive one.

The compressor writes one terse memento per block, all blocks in one call (as the paper). The
judge scores each 0-10 on a six-part rubric with specific feedback; mementos under the
threshold are rewritten with that feedback, up to `max_iterations` rounds. Final scores are kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memento.data.llm import LLMClient, MalformedAnswer, Usage

COMPRESS_SYSTEM = """You write mementos: terse notes that let a reader continue a chain of thought after the
block they summarise has been deleted. For each numbered block, write one memento that keeps every
quantity, equation, intermediate result, decision and conclusion needed later, drops narration, hesitation
and dead ends (keep a dead end only as 'X fails because Y'), uses symbols and numbers rather than prose,
and is self-contained. Aim for about a fifth of the block's length.
Answer with JSON only: {"mementos": ["memento for block 1", "memento for block 2", ...]}, one per block, in order."""

JUDGE_SYSTEM = """You grade mementos, each a compressed stand-in for a block of reasoning that will be deleted.
Score each memento from 0 to 10 on six criteria together:
1. key results: every value, equation and intermediate result the rest of the reasoning needs is kept;
2. correctness: nothing contradicts or misstates the block;
3. decisions: conclusions, chosen approaches and rejected ones (with why) are recorded;
4. state: what is needed to continue (current goal, open sub-problems) is clear;
5. brevity: no narration or filler;
6. self-contained: readable without the block.
Give specific feedback naming what is missing or wrong.
Answer with JSON only: {"grades": [{"block": 1, "score": S, "feedback": "..."}, ...]}, one per block."""


@dataclass
class Compression:
    """Mementos for a trace's blocks, with the judge's final scores and feedback (None when offline)."""

    mementos: list[str]
    scores: list[float] | None = None
    feedback: list[str] | None = None
    rounds: int = 0
    usage: Usage = field(default_factory=Usage)


def _blocks_request(problem: str, blocks: Sequence[str], mementos: Sequence[str] | None = None) -> str:
    parts = [f"Problem:\n{problem.strip()}\n"]
    for number, block in enumerate(blocks, start=1):
        parts.append(f"Block {number}:\n{block.strip()}\n")
        if mementos is not None:
            parts.append(f"Memento {number}:\n{mementos[number - 1].strip()}\n")
    return "\n".join(parts)


def _mementos_validator(count: int):
    def validate(answer: dict[str, Any]) -> list[str]:
        mementos = answer.get("mementos")
        if not isinstance(mementos, list) or not all(isinstance(m, str) and m.strip() for m in mementos):
            raise MalformedAnswer("expected 'mementos': a list of non-empty strings")
        if len(mementos) != count:
            raise MalformedAnswer(f"expected {count} mementos, got {len(mementos)}")
        return [m.strip() for m in mementos]

    return validate


def _grades_validator(count: int):
    def validate(answer: dict[str, Any]) -> list[tuple[float, str]]:
        grades = answer.get("grades")
        if not isinstance(grades, list):
            raise MalformedAnswer("expected 'grades': a list")
        by_block: dict[int, tuple[float, str]] = {}
        for grade in grades:
            if not isinstance(grade, dict) or not isinstance(grade.get("block"), int):
                raise MalformedAnswer(f"bad grade {grade!r}")
            score = grade.get("score")
            if not isinstance(score, (int, float)) or not 0 <= score <= 10:
                raise MalformedAnswer(f"grade score must be 0-10, got {score!r}")
            by_block[grade["block"]] = (float(score), str(grade.get("feedback", "")))
        missing = [b for b in range(1, count + 1) if b not in by_block]
        if missing:
            raise MalformedAnswer(f"no grade for blocks {missing}")
        return [by_block[b] for b in range(1, count + 1)]

    return validate


def compress_with_llm(
    problem: str,
    blocks: Sequence[str],
    compressor: LLMClient,
    judge: LLMClient | None = None,
    *,
    threshold: float = 8.0,
    max_iterations: int = 2,
    usage: Usage | None = None,
) -> Compression:
    """Compress all blocks in one call, grade them, and refine those under `threshold`.

    Calls are counted into `usage` as they happen (so a failure still leaves them counted).
    """
    usage = Usage() if usage is None else usage
    mementos = compressor.ask_json(
        COMPRESS_SYSTEM, _blocks_request(problem, blocks), _mementos_validator(len(blocks)), usage
    )
    if judge is None:
        return Compression(mementos, usage=usage)
    rounds = 0
    while True:
        grades = judge.ask_json(
            JUDGE_SYSTEM, _blocks_request(problem, blocks, mementos), _grades_validator(len(blocks)), usage
        )
        weak = [i for i, (score, _) in enumerate(grades) if score < threshold]
        if not weak or rounds >= max_iterations:
            break
        rounds += 1
        notes = "\n".join(f"Memento {i + 1} scored {grades[i][0]:g}/10: {grades[i][1]}" for i in weak)
        request = (
            _blocks_request(problem, blocks, mementos)
            + f"\nRewrite every memento, improving these according to the feedback:\n{notes}"
        )
        mementos = compressor.ask_json(COMPRESS_SYSTEM, request, _mementos_validator(len(blocks)), usage)
    return Compression(mementos, [s for s, _ in grades], [f for _, f in grades], rounds, usage)


# ---------------------------------------------------------------------------------------------
# Offline extractive compressor

_KEEPS = re.compile(
    r"=|\d|\\boxed|\b(?:therefore|thus|hence|so the|answer|result|conclude|means|gives|get|works|fails|correct|"
    r"wrong|must|cannot|impossible)\b",
    re.IGNORECASE,
)
_FILLER = re.compile(
    r"^\s*(?:Okay|Hmm+|Wait|Alright|Let me (?:think|see)|Let's see|So,? let me)[,.]?\s*", re.IGNORECASE
)


def compress_extractive(block: str, *, ratio: float = 0.2) -> str:
    """An offline memento: the block's sentences with equations, numbers and conclusions, filler
    openers stripped, trimmed to about `ratio` of the block's characters (the last such sentences
    first, as they hold the block's results)."""
    from memento.data.split import split_sentences

    sentences = [s.strip() for s in split_sentences(block).sentences if s.strip()]
    keep = [_FILLER.sub("", s) for s in sentences if _KEEPS.search(s)] or sentences[-1:]
    budget = max(int(len(block) * ratio), 60)
    chosen: list[str] = []
    for sentence in reversed(keep):
        if chosen and sum(map(len, chosen)) + len(sentence) > budget:
            break
        chosen.append(sentence if len(sentence) <= budget else sentence[: budget - 3].rstrip() + "...")
    return " ".join(reversed(chosen))

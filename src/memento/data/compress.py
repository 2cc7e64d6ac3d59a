"""Mementos for blocks: an LLM compressor judged by an LLM and refined, or an offline extractive one.

The compressor writes one terse memento per block, all blocks in one call (as the paper). The
judge scores each 0-10 on a six-part rubric with specific feedback; mementos under the
threshold are rewritten with that feedback, up to `max_iterations` rounds. Final scores are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from memento.data import schemas
from memento.data.extractive import compress_extractive
from memento.data.llm import LLMClient, Usage

__all__ = ["Compression", "compress_extractive", "compress_with_llm"]

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
    """Mementos for a trace's blocks, with the judge's final scores and feedback (None when offline).

    `rewritten`: indices of the blocks whose final memento differs from the first draft (refinement).
    """

    mementos: list[str]
    scores: list[float] | None = None
    feedback: list[str] | None = None
    rounds: int = 0
    usage: Usage = field(default_factory=Usage)
    rewritten: list[int] = field(default_factory=list)


def _blocks_request(problem: str, blocks: Sequence[str], mementos: Sequence[str] | None = None) -> str:
    parts = [f"Problem:\n{problem.strip()}\n"]
    for number, block in enumerate(blocks, start=1):
        parts.append(f"Block {number}:\n{block.strip()}\n")
        if mementos is not None:
            parts.append(f"Memento {number}:\n{mementos[number - 1].strip()}\n")
    return "\n".join(parts)


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
    longest = max((len(block.strip()) for block in blocks), default=1)
    mementos = compressor.ask_json(
        COMPRESS_SYSTEM, _blocks_request(problem, blocks), schemas.mementos(len(blocks), longest), usage
    )
    drafts = mementos
    if judge is None:
        return Compression(mementos, usage=usage)
    rounds = 0
    while True:
        grades = judge.ask_json(
            JUDGE_SYSTEM, _blocks_request(problem, blocks, mementos), schemas.grades(len(blocks)), usage
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
        mementos = compressor.ask_json(COMPRESS_SYSTEM, request, schemas.mementos(len(blocks), longest), usage)
    rewritten = [i for i, (draft, final) in enumerate(zip(drafts, mementos, strict=True)) if draft != final]
    return Compression(mementos, [s for s, _ in grades], [f for _, f in grades], rounds, usage, rewritten)

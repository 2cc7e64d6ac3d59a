"""Segment a chain of thought into blocks: the paper's objective, solved exactly and fast.

Blocks are runs of consecutive sentences. The objective (paper, section 3) rewards cutting at
high-scoring boundaries and penalises uneven block sizes:

    objective = (1/K) * sum of the scores of the K-1 cuts  -  lambda * std(sizes) / mean(sizes)

with every block at least `min_block_tokens` long (the first block's entry boundary counts 0;
std is the population std). The objective does not decompose over blocks, so a plain dynamic
program is only approximate. But for a fixed K the mean is T/K (T = all tokens), so with
A = sum of cut scores and Q = sum of squared sizes,

    g(A, Q) = A/K - lambda * sqrt(Q/K - mean^2) / mean

is convex in (A, Q), increasing in A and decreasing in Q. Its maximum over the finite set of
achievable (A, Q) is therefore at a vertex of their convex hull on the high-A / low-Q side, and
every such vertex maximises A - theta*Q for some theta >= 0: a *decomposable* objective, solved by
one vectorised O(n^2 K) dynamic program that yields the optimum for every K at once. A hull
search per K (pruned by upper bounds) visits those vertices, which makes the result exact.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_TOLERANCE = 1e-9


def objective(
    blocks: Sequence[tuple[int, int]],
    boundary_scores: Sequence[float],
    sentence_tokens: Sequence[int],
    *,
    variance_penalty: float = 0.5,
) -> float:
    """The paper's objective for inclusive sentence ranges `blocks` covering 0..n-1 in order."""
    _check_cover(blocks, len(sentence_tokens))
    sizes = [sum(sentence_tokens[a : b + 1]) for a, b in blocks]
    cut_scores = sum(boundary_scores[a - 1] for a, _ in blocks[1:])
    return _value(cut_scores, sum(s * s for s in sizes), len(blocks), sum(sizes), variance_penalty)


def _value(cut_scores: float, squares: float, count: int, total: float, variance_penalty: float) -> float:
    mean = total / count
    variance = max(squares / count - mean * mean, 0.0)
    return cut_scores / count - variance_penalty * math.sqrt(variance) / mean if mean > 0 else cut_scores / count


def _check_cover(blocks: Sequence[tuple[int, int]], n: int) -> None:
    expected = 0
    for a, b in blocks:
        if a != expected or b < a:
            raise ValueError(f"blocks must cover 0..{n - 1} in order without gaps, got {list(blocks)}")
        expected = b + 1
    if expected != n:
        raise ValueError(f"blocks must cover 0..{n - 1} in order without gaps, got {list(blocks)}")


@dataclass(frozen=True)
class _Point:
    cut_scores: float  # A
    squares: int  # Q
    cuts: tuple[int, ...]  # sentence index where each block after the first starts


class _LinearSolver:
    """max over segmentations into K blocks of  weight_a * A - weight_q * Q, for every K up to a limit."""

    def __init__(self, scores: np.ndarray, tokens: np.ndarray, min_block_tokens: int, max_blocks: int) -> None:
        self.prefix = np.concatenate([[0], np.cumsum(tokens)]).astype(np.int64)  # [n+1]
        self.entry = np.concatenate([[0.0], scores, [0.0]])  # [n+1] entry score of a block starting at sentence j
        sizes = self.prefix[:, None] - self.prefix[None, :]  # [i, j] = tokens of sentences j..i-1
        allowed = sizes >= max(min_block_tokens, 1)  # also implies j < i
        self.squares = np.where(allowed, sizes.astype(np.float64) ** 2, np.inf)  # inf: block too small
        self.feasible = np.where(allowed, 0.0, np.inf)
        self.max_blocks = max_blocks
        self.min_block_tokens = max(min_block_tokens, 1)
        self.cache: dict[tuple[float, float, int], dict[int, _Point]] = {}

    def solve(self, weight_a: float, weight_q: float, only: int | None = None) -> dict[int, _Point]:
        """Optimal points for every K (or only K = `only`, computing just the layers it needs)."""
        key = (weight_a, weight_q, only or 0)
        if key in self.cache:
            return self.cache[key]
        n1 = len(self.prefix)
        penalty = weight_q * self.squares if weight_q else self.feasible  # [i, j]
        value = np.full(n1, -np.inf)
        value[0] = 0.0
        choices = []
        results: dict[int, _Point] = {}
        everywhere = np.arange(n1)
        for count in range(1, (only or self.max_blocks) + 1):
            if not np.isfinite(value).any():
                break  # no segmentation into this many blocks
            # whole-matrix layer (cheaper than gathering the reachable part): unreachable starts are -inf
            candidate = (value + weight_a * self.entry * (count > 1))[None, :] - penalty  # [i, j]
            choice = candidate.argmax(axis=1)
            value = candidate[everywhere, choice]
            # prefixes too short for `count` blocks, or (for one K) leaving no room for the rest
            too_short = self.prefix < count * self.min_block_tokens
            if only is not None:
                too_short |= self.prefix[-1] - self.prefix < (only - count) * self.min_block_tokens
            value[too_short] = -np.inf
            choices.append(choice)
            if np.isfinite(value[-1]) and (only is None or count == only):
                results[count] = self._backtrack(choices, count)
        self.cache[key] = results
        return results

    def _backtrack(self, choices: list[np.ndarray], count: int) -> _Point:
        starts, end = [], len(self.prefix) - 1
        for layer in range(count - 1, -1, -1):
            end = int(choices[layer][end])
            starts.append(end)
        starts.reverse()
        bounds = [*starts, len(self.prefix) - 1]
        squares = sum(int(self.prefix[b] - self.prefix[a]) ** 2 for a, b in itertools.pairwise(bounds))
        return _Point(float(sum(self.entry[s] for s in starts[1:])), squares, tuple(starts[1:]))


def segment(
    boundary_scores: Sequence[float],
    sentence_tokens: Sequence[int],
    *,
    min_block_tokens: int = 200,
    variance_penalty: float = 0.5,
) -> list[tuple[int, int]]:
    """Blocks maximising the paper's objective, exactly.

    Args:
        boundary_scores: [n-1] score of the boundary between sentence i and i+1 (0-3).
        sentence_tokens: [n] tokens per sentence.
        min_block_tokens: every block at least this long (when the whole text is shorter, one block).
        variance_penalty: lambda.

    Returns:
        Inclusive sentence index ranges ``[(0, 5), (6, 12), ...]`` covering 0..n-1 in order.
    """
    n = len(sentence_tokens)
    if n == 0:
        return []
    if len(boundary_scores) != n - 1:
        raise ValueError(f"need {n - 1} boundary scores for {n} sentences, got {len(boundary_scores)}")
    if any(t < 0 for t in sentence_tokens):
        raise ValueError("sentence token counts must be >= 0")
    total = int(sum(sentence_tokens))
    max_blocks = min(n, total // max(min_block_tokens, 1)) if total else 1
    if max_blocks <= 1:
        return [(0, n - 1)]
    solver = _LinearSolver(
        np.asarray(boundary_scores, dtype=np.float64),
        np.asarray(sentence_tokens, dtype=np.int64),
        min_block_tokens,
        max_blocks,
    )

    def g(point: _Point, count: int) -> float:
        return _value(point.cut_scores, point.squares, count, total, variance_penalty)

    best_value, best = 0.0, _Point(0.0, total * total, ())  # one block
    most_scores = solver.solve(1.0, 0.0)  # the high-A end of every K's hull
    least_squares = solver.solve(0.0, 1.0)  # the low-Q end
    for points in (most_scores, least_squares):  # every K's hull endpoints: a strong incumbent at once
        for count, point in points.items():
            if count > 1 and g(point, count) > best_value:
                best_value, best = g(point, count), point
    bounds = []
    for count in range(2, max_blocks + 1):
        if count in most_scores and count in least_squares:
            corner = _Point(most_scores[count].cut_scores, least_squares[count].squares, ())
            bounds.append((g(corner, count), count))
    for bound, count in sorted(bounds, reverse=True):
        if bound <= best_value + _TOLERANCE:
            break  # no K left can beat the best found
        low, high = least_squares[count], most_scores[count]
        for end in (low, high):
            if g(end, count) > best_value:
                best_value, best = g(end, count), end
        # Each hull vertex comes with the normal (weight_a, weight_q) of a supporting line through it: the
        # low-Q end supports Q >= Q_low (0, 1), the high-A end A <= A_high (1, 0). Any hull vertex between two
        # known ones lies in the triangle they form with the crossing of their supporting lines, and convex g
        # peaks at a corner of it: that crossing is the bound.
        stack = [(low, (0.0, 1.0), high, (1.0, 0.0))]
        while stack:
            low, low_normal, high, high_normal = stack.pop()
            if high.squares <= low.squares or high.cut_scores <= low.cut_scores:
                continue
            crossing = _crossing(low, low_normal, high, high_normal)
            if crossing is not None and _value(*crossing, count, total, variance_penalty) <= best_value + _TOLERANCE:
                continue  # nothing between these two vertices can beat the best found
            weight_a, weight_q = float(high.squares - low.squares), float(high.cut_scores - low.cut_scores)
            middle = solver.solve(weight_a, weight_q, only=count)[count]
            level = weight_a * low.cut_scores - weight_q * low.squares
            if weight_a * middle.cut_scores - weight_q * middle.squares <= level + 1e-12 * max(1.0, abs(level)):
                continue  # the segment is a hull edge
            if g(middle, count) > best_value:
                best_value, best = g(middle, count), middle
            normal = (weight_a, weight_q)
            stack += [(low, low_normal, middle, normal), (middle, normal, high, high_normal)]
    starts = [0, *best.cuts]
    ends = [s - 1 for s in best.cuts] + [n - 1]
    return list(zip(starts, ends, strict=True))


def _crossing(
    low: _Point, low_normal: tuple[float, float], high: _Point, high_normal: tuple[float, float]
) -> tuple[float, float] | None:
    """(A, Q) where the supporting lines  a*A - q*Q = a*A_p - q*Q_p  through `low` and `high` cross."""
    (a1, q1), (a2, q2) = low_normal, high_normal
    determinant = -a1 * q2 + a2 * q1
    if abs(determinant) < 1e-300:
        return None  # parallel lines: fall back to solving the edge
    c1 = a1 * low.cut_scores - q1 * low.squares
    c2 = a2 * high.cut_scores - q2 * high.squares
    cut_scores = (c1 * -q2 - -q1 * c2) / determinant
    squares = (a1 * c2 - a2 * c1) / determinant
    return cut_scores, squares

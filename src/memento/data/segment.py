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
every such vertex maximises wa*A - wq*Q for some direction (wa, wq) >= 0: a *decomposable*
objective, solved by one O(n K) dynamic program (a monotone convex-hull queue per layer: no [n, n]
matrix, so a 2 MB trace of 23,000 sentences takes seconds) that yields the optimum for every K at
once. A best-first search over all K's hulls (each gap between two known vertices bounded by the
corner of its triangle; every solve adds a vertex to every K) visits the vertices that can still
win, which makes the result exact.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Collection, Sequence
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


@dataclass(frozen=True, eq=False)
class _Vertex:
    """A hull vertex and the normal (wa, wq) of a line through it that supports the hull."""

    point: _Point
    normal: tuple[float, float]


class _LinearSolver:
    """max over segmentations into K blocks of  wa * A - wq * Q, for every K up to `max_blocks` at once, in O(n K).

    Layer K: best_K(i) = max over j of best_{K-1}(j) + wa * entry(j) - wq * (P_i - P_j)^2, for the j with
    P_i - P_j >= min_block_tokens (P: token prefix sums). Expanded, each j is a line in x = P_i with slope
    2 wq P_j and intercept best_{K-1}(j) + wa * entry(j) - wq P_j^2; slopes grow with j and queries with i,
    so a monotone convex-hull queue answers every i in amortised O(1) (no [n, n] matrix: 2 MB traces fit).
    """

    def __init__(self, scores: np.ndarray, tokens: np.ndarray, min_block_tokens: int, max_blocks: int) -> None:
        self.prefix = [0, *itertools.accumulate(int(t) for t in tokens)]  # [n+1] exact integers
        self.entry = [0.0, *(float(s) for s in scores), 0.0]  # [n+1] entry score of a block starting at sentence j
        self.min_block_tokens = max(min_block_tokens, 1)
        self.max_blocks = max_blocks

    def solve(self, weight_a: float, weight_q: float, wanted: Collection[int] | None = None) -> dict[int, _Point]:
        """The optimal point for every reachable K (1..max_blocks), or for the `wanted` ones."""
        slopes = [2.0 * weight_q * p for p in self.prefix]  # line j: slope and the part of its intercept fixed by j
        first = [-weight_q * float(p) ** 2 for p in self.prefix]
        later = [c + weight_a * e for c, e in zip(first, self.entry, strict=True)]  # blocks after the first add entry
        value = [-math.inf] * len(self.prefix)
        value[0] = 0.0
        choices, results = [], {}
        for count in range(1, self.max_blocks + 1):
            value, choice = self._layer(value, slopes, first if count == 1 else later, weight_q)
            choices.append(choice)
            if value[-1] > -math.inf and (wanted is None or count in wanted):
                results[count] = self._backtrack(choices, count)
            if max(value) == -math.inf:
                break  # no segmentation into this many blocks
        return results

    def _layer(
        self, previous: list[float], line_slopes: list[float], line_offsets: list[float], weight_q: float
    ) -> tuple[list[float], list[int]]:
        """best_K and its argmax j for every i, from best_{K-1} = `previous` (-inf: unreachable)."""
        prefix, shortest = self.prefix, self.min_block_tokens
        value, choice = [-math.inf] * len(prefix), [0] * len(prefix)
        slopes: list[float] = []  # the hull's lines, slopes strictly increasing; lines[head:] are live
        intercepts: list[float] = []
        owners: list[int] = []
        head = j = 0
        for i in range(1, len(prefix)):
            x = prefix[i]
            while j < i and prefix[j] <= x - shortest:  # j may now start the block ending at i
                if previous[j] > -math.inf:
                    slope, intercept = line_slopes[j], previous[j] + line_offsets[j]
                    keep = True
                    while len(slopes) > head:
                        if slopes[-1] == slope:
                            if intercepts[-1] > intercept:
                                keep = False  # the new line is never above the last one
                                break
                        elif len(slopes) - head < 2 or (intercepts[-2] - intercepts[-1]) * (slope - slopes[-1]) < (
                            intercepts[-1] - intercept
                        ) * (slopes[-1] - slopes[-2]):
                            break  # the last line is above both its neighbours somewhere: it stays
                        slopes.pop()
                        intercepts.pop()
                        owners.pop()
                    if keep:
                        slopes.append(slope)
                        intercepts.append(intercept)
                        owners.append(j)
                j += 1
            if len(slopes) > head:
                best = slopes[head] * x + intercepts[head]
                while head + 1 < len(slopes) and (candidate := slopes[head + 1] * x + intercepts[head + 1]) >= best:
                    head, best = head + 1, candidate
                value[i] = best - weight_q * float(x) ** 2
                choice[i] = owners[head]
        return value, choice

    def _backtrack(self, choices: list[list[int]], count: int) -> _Point:
        starts, end = [], len(self.prefix) - 1
        for layer in range(count - 1, -1, -1):
            end = choices[layer][end]
            starts.append(end)
        starts.reverse()
        bounds = [*starts, len(self.prefix) - 1]
        squares = sum((self.prefix[b] - self.prefix[a]) ** 2 for a, b in itertools.pairwise(bounds))
        return _Point(float(sum(self.entry[s] for s in starts[1:])), squares, tuple(starts[1:]))


def segment(
    boundary_scores: Sequence[float],
    sentence_tokens: Sequence[int],
    *,
    min_block_tokens: int = 200,
    variance_penalty: float = 0.5,
    min_blocks: int = 1,
    max_blocks: int | None = None,
) -> list[tuple[int, int]]:
    """Blocks maximising the paper's objective, exactly.

    Args:
        boundary_scores: [n-1] score of the boundary between sentence i and i+1 (0-3).
        sentence_tokens: [n] tokens per sentence.
        min_block_tokens: every block at least this long (when the whole text is shorter, one block).
        variance_penalty: lambda (the authors' ``variance_weight``).
        min_blocks, max_blocks: the number of blocks K is searched in this range (None: no upper
            limit). When no K in it can be reached, the most blocks that can (the authors'
            pipeline falls back to a single block there).

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
    if min_blocks < 1 or (max_blocks is not None and max_blocks < min_blocks):
        raise ValueError(f"need 1 <= min_blocks <= max_blocks, got {min_blocks} and {max_blocks}")
    total = int(sum(sentence_tokens))
    fitting = min(n, total // max(min_block_tokens, 1)) if total else 1
    limit = fitting if max_blocks is None else min(max_blocks, fitting)
    if limit <= 1:
        return [(0, n - 1)]
    solver = _LinearSolver(
        np.asarray(boundary_scores, dtype=np.float64),
        np.asarray(sentence_tokens, dtype=np.int64),
        min_block_tokens,
        limit,
    )
    most_scores = solver.solve(1.0, 0.0)  # the high-A end of every K's hull
    counts = [k for k in sorted(most_scores) if min_blocks <= k]
    if not counts:
        counts = sorted(most_scores)[-1:]  # none in range: the most blocks that can be reached
    least_squares = solver.solve(0.0, 1.0, counts)  # the low-Q end
    search = _HullSearch(counts, total, variance_penalty)
    for count in counts:
        search.start(count, least_squares[count], most_scores[count])
    while (gap := search.next_gap()) is not None:
        search.add(solver.solve(*gap, counts), gap)
    starts = [0, *search.best.cuts]
    ends = [s - 1 for s in search.best.cuts] + [n - 1]
    return list(zip(starts, ends, strict=True))


class _HullSearch:
    """The known vertices of each K's hull, and the gaps between them that may still hold the optimum.

    Any hull vertex between two known ones lies in the triangle they form with the crossing of their
    supporting lines, and convex g peaks at a corner of it: the crossing bounds the gap. Gaps are
    explored best bound first; the search ends when no gap's bound beats the best point found.
    """

    def __init__(self, counts: list[int], total: int, variance_penalty: float) -> None:
        self.total, self.variance_penalty = total, variance_penalty
        self.hulls: dict[int, list[_Vertex]] = {}
        self.best_value, self.best = -math.inf, _Point(0.0, total * total, ())
        self._gaps: list[tuple[float, int, int, _Vertex, _Vertex]] = []  # max-heap by bound
        self._pushed = 0
        self._asked: tuple[int, _Vertex, _Vertex] | None = None

    def value(self, point: _Point, count: int) -> float:
        return _value(point.cut_scores, point.squares, count, self.total, self.variance_penalty)

    def start(self, count: int, low: _Point, high: _Point) -> None:
        """A K's hull from its low-Q end (normal (0, 1)) and its high-A end (normal (1, 0))."""
        first, last = _Vertex(low, (0.0, 1.0)), _Vertex(high, (1.0, 0.0))
        self.hulls[count] = [first, last]
        for vertex in (first, last):
            self._offer(vertex.point, count)
        self._push(count, first, last)

    def next_gap(self) -> tuple[float, float] | None:
        """The direction (wa, wq) to solve next: the normal of the most promising gap; None when done."""
        while self._gaps:
            bound, _, count, low, high = heapq.heappop(self._gaps)
            if -bound <= self.best_value + _TOLERANCE:
                return None  # no gap left can beat the best found
            hull = self.hulls[count]
            index = next(i for i, v in enumerate(hull) if v is low)
            if index + 1 < len(hull) and hull[index + 1] is high:  # else a vertex was found in between since
                self._asked = (count, low, high)
                return (float(high.point.squares - low.point.squares), high.point.cut_scores - low.point.cut_scores)
        return None

    def add(self, points: dict[int, _Point], normal: tuple[float, float]) -> None:
        """The optimum of every K in direction `normal`: a hull vertex of each, inserted where it is new."""
        assert self._asked is not None
        for count, point in points.items():
            if count in self.hulls:
                self._offer(point, count)
                self._insert(count, _Vertex(point, normal))
        self._asked = None

    def _insert(self, count: int, vertex: _Vertex) -> None:
        hull, (weight_a, weight_q), point = self.hulls[count], vertex.normal, vertex.point
        index = next((i for i, v in enumerate(hull) if v.point.cut_scores >= point.cut_scores), len(hull))
        if index == 0 or index == len(hull):
            return  # outside the known chain: never, as its ends are extreme
        low, high = hull[index - 1], hull[index]
        level = max(
            weight_a * low.point.cut_scores - weight_q * low.point.squares,
            weight_a * high.point.cut_scores - weight_q * high.point.squares,
        )
        if weight_a * point.cut_scores - weight_q * point.squares <= level + 1e-12 * max(1.0, abs(level)):
            return  # not beyond the known chain in this direction: nothing new (for the asked gap: an edge)
        hull.insert(index, vertex)
        self._push(count, low, vertex)
        self._push(count, vertex, high)

    def _offer(self, point: _Point, count: int) -> None:
        if self.value(point, count) > self.best_value:
            self.best_value, self.best = self.value(point, count), point

    def _push(self, count: int, low: _Vertex, high: _Vertex) -> None:
        if high.point.squares <= low.point.squares or high.point.cut_scores <= low.point.cut_scores:
            return  # no room for a vertex in between
        crossing = _crossing(low.point, low.normal, high.point, high.normal)
        # parallel lines: no triangle, the gap must be solved
        bound = math.inf if crossing is None else _value(*crossing, count, self.total, self.variance_penalty)
        if bound > self.best_value + _TOLERANCE:
            self._pushed += 1
            heapq.heappush(self._gaps, (-bound, self._pushed, count, low, high))


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

from __future__ import annotations

import itertools
import math
import random

import pytest

from memento.data.segment import objective, segment


def brute_force(scores, tokens, min_block_tokens, variance_penalty, min_blocks=1, max_blocks=None):
    """Best objective over all partitions into K in [min_blocks, max_blocks] blocks of at least
    `min_block_tokens` (one block when no K in range is possible: see `segment`'s fallback)."""
    n = len(tokens)
    by_count: dict[int, float] = {1: objective([(0, n - 1)], scores, tokens, variance_penalty=variance_penalty)}
    for count in range(1, n):
        for cuts in itertools.combinations(range(1, n), count):
            starts = [0, *cuts]
            blocks = list(zip(starts, [c - 1 for c in cuts] + [n - 1], strict=True))
            if all(sum(tokens[a : b + 1]) >= min_block_tokens for a, b in blocks):
                value = objective(blocks, scores, tokens, variance_penalty=variance_penalty)
                by_count[count + 1] = max(by_count.get(count + 1, -math.inf), value)
    in_range = [v for k, v in by_count.items() if min_blocks <= k <= (max_blocks or n)]
    if in_range:
        return max(in_range)
    return by_count[max(k for k in by_count if k <= (max_blocks or n))]  # the most blocks that fit


@pytest.mark.parametrize("seed", range(40))
def test_matches_brute_force_on_small_instances(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 14)
    tokens = [rng.randint(5, 120) for _ in range(n)]
    step = rng.choice([1.0, 0.5, None])  # integer scores, two-pass averages, or arbitrary reals
    scores = [rng.randint(0, int(3 / step)) * step if step else rng.uniform(0, 3) for _ in range(n - 1)]
    min_block = rng.choice([0, 50, 100, 200])
    penalty = rng.choice([0.0, 0.5, 2.0])
    blocks = segment(scores, tokens, min_block_tokens=min_block, variance_penalty=penalty)
    assert blocks[0][0] == 0 and blocks[-1][1] == n - 1
    if len(blocks) > 1:
        assert all(sum(tokens[a : b + 1]) >= min_block for a, b in blocks)
    found = objective(blocks, scores, tokens, variance_penalty=penalty)
    assert found == pytest.approx(brute_force(scores, tokens, min_block, penalty), abs=1e-9)


def test_objective_follows_the_paper():
    tokens, scores = [100, 100, 200, 100], [3, 0, 2]
    # blocks [0-1] [2] [3]: sizes 200, 200, 100 -> mean 166.7, population std 47.1; cuts score 0 + 2
    value = objective([(0, 1), (2, 2), (3, 3)], scores, tokens, variance_penalty=0.5)
    assert value == pytest.approx(2 / 3 - 0.5 * (47.14045207910317 / (500 / 3)))
    assert objective([(0, 3)], scores, tokens) == 0.0


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="need 2 boundary scores for 3 sentences"):
        segment([1.0], [10, 10, 10])
    with pytest.raises(ValueError, match=r"cover 0\.\.2"):
        objective([(0, 0), (2, 2)], [1, 1], [10, 10, 10])
    assert segment([], []) == []
    assert segment([3.0, 3.0], [10, 10, 10], min_block_tokens=200) == [(0, 2)]  # too short to split


@pytest.mark.parametrize("seed", range(40))
def test_block_count_range_matches_brute_force(seed):
    rng = random.Random(1000 + seed)
    n = rng.randint(2, 13)
    tokens = [rng.randint(5, 120) for _ in range(n)]
    scores = [rng.randint(0, 6) / 2 for _ in range(n - 1)]
    min_block, penalty = rng.choice([0, 50, 100]), rng.choice([0.0, 1.0, 2.0])
    min_blocks = rng.randint(1, 6)
    max_blocks = rng.choice([None, min_blocks, min_blocks + rng.randint(0, 4)])
    blocks = segment(
        scores,
        tokens,
        min_block_tokens=min_block,
        variance_penalty=penalty,
        min_blocks=min_blocks,
        max_blocks=max_blocks,
    )
    assert blocks[0][0] == 0 and blocks[-1][1] == n - 1
    expected = brute_force(scores, tokens, min_block, penalty, min_blocks, max_blocks)
    assert objective(blocks, scores, tokens, variance_penalty=penalty) == pytest.approx(expected, abs=1e-9)


def least_squares_by_score(scores, tokens, min_block_tokens, count):
    """For half-integer scores: {sum of cut scores (in halves): least sum of squared block sizes} over
    segmentations into `count` blocks. An exact reference independent of the hull search."""
    n = len(tokens)
    prefix = list(itertools.accumulate(tokens, initial=0))
    layer: dict[int, dict[int, int]] = {0: {0: 0}}  # end -> halves -> least squares
    for k in range(count):
        following: dict[int, dict[int, int]] = {}
        for j, table in layer.items():
            for i in range(j + 1, n + 1):
                size = prefix[i] - prefix[j]
                if size < min_block_tokens:
                    continue
                gain = round(2 * scores[j - 1]) if k > 0 else 0
                target = following.setdefault(i, {})
                for halves, squares in table.items():
                    key, value = halves + gain, squares + size * size
                    if value < target.get(key, math.inf):
                        target[key] = value
        layer = following
    return layer.get(n, {})


@pytest.mark.parametrize("seed", range(6))
def test_exact_on_larger_instances_against_a_score_indexed_reference(seed):
    rng = random.Random(seed)
    n = 36
    tokens = [rng.randint(8, 90) for _ in range(n)]
    scores = [rng.randint(0, 6) / 2 for _ in range(n - 1)]
    penalty, min_block = rng.choice([0.5, 1.0, 3.0]), 150
    blocks = segment(scores, tokens, min_block_tokens=min_block, variance_penalty=penalty, min_blocks=4, max_blocks=8)
    total = sum(tokens)
    best = -math.inf
    for count in range(4, 9):
        for halves, squares in least_squares_by_score(scores, tokens, min_block, count).items():
            mean = total / count
            value = halves / 2 / count - penalty * math.sqrt(max(squares / count - mean * mean, 0)) / mean
            best = max(best, value)
    assert 4 <= len(blocks) <= 8
    assert objective(blocks, scores, tokens, variance_penalty=penalty) == pytest.approx(best, abs=1e-9)


def test_block_count_range_is_checked():
    with pytest.raises(ValueError, match="min_blocks <= max_blocks"):
        segment([1.0], [300, 300], min_blocks=3, max_blocks=2)
    with pytest.raises(ValueError, match="min_blocks <= max_blocks"):
        segment([1.0], [300, 300], min_blocks=0)

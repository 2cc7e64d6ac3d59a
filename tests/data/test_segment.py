from __future__ import annotations

import itertools
import random

import pytest

from memento.data.segment import objective, segment


def brute_force(scores, tokens, min_block_tokens, variance_penalty):
    """Best objective over all partitions into blocks of at least `min_block_tokens` (one block always allowed)."""
    n = len(tokens)
    best = objective([(0, n - 1)], scores, tokens, variance_penalty=variance_penalty)
    for count in range(1, n):
        for cuts in itertools.combinations(range(1, n), count):
            starts = [0, *cuts]
            blocks = list(zip(starts, [c - 1 for c in cuts] + [n - 1], strict=True))
            if all(sum(tokens[a : b + 1]) >= min_block_tokens for a, b in blocks):
                best = max(best, objective(blocks, scores, tokens, variance_penalty=variance_penalty))
    return best


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

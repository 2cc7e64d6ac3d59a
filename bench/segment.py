"""Segmentation: our exact solver vs a straightforward O(n^2 K) dynamic program of the authors' kind.

The authors' DP extends, at each (sentence, block count), the best partial segmentation by its
partial objective, summing each candidate block's tokens from its slice; since the objective
does not decompose over blocks, this is approximate. Ours is exact (see memento.data.segment).
Random instances shaped like real traces (n sentences of 5-60 tokens, scores 0-3 averaged over
two passes), one run, time and objective side by side.

    .venv/bin/python bench/segment.py             # n = 400, 5 instances
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

from memento.data.segment import objective, segment


def authors_dp(scores, tokens, min_block_tokens=200, variance_penalty=0.5):
    n = len(tokens)
    total = sum(tokens)
    max_blocks = min(n, total // min_block_tokens)

    def partial(cut_sum: float, sizes: list[int]) -> float:
        mean = sum(sizes) / len(sizes)
        std = math.sqrt(sum((s - mean) ** 2 for s in sizes) / len(sizes))
        return cut_sum / len(sizes) - variance_penalty * std / mean

    # state[i] for k blocks: (partial objective, cut score sum, sizes, starts) of the best prefix ending at i
    layer = {0: (0.0, 0.0, [], [])}
    best = ([(0, n - 1)], 0.0)
    for _ in range(max_blocks):  # one layer per block count
        following = {}
        for i in range(1, n + 1):
            candidates = []
            for j, (_, cut_sum, sizes, starts) in layer.items():
                size = sum(tokens[j:i])  # the O(n) slice
                if j >= i or size < min_block_tokens:
                    continue
                new_cut = cut_sum + (scores[j - 1] if j > 0 else 0.0)
                new_sizes = [*sizes, size]
                candidates.append((partial(new_cut, new_sizes), new_cut, new_sizes, [*starts, j]))
            if candidates:
                following[i] = max(candidates, key=lambda c: c[0])
        layer = following
        if n in layer:
            starts = layer[n][3]
            blocks = list(zip(starts, [s - 1 for s in starts[1:]] + [n - 1], strict=True))
            value = objective(blocks, scores, tokens, variance_penalty=variance_penalty)
            if value > best[1]:
                best = (blocks, value)
    return best[0]


def instance(n: int, seed: int) -> tuple[list[float], list[int]]:
    rng = random.Random(seed)
    tokens = [rng.randint(5, 60) for _ in range(n)]
    scores = [(rng.choice([0, 0, 0, 1, 1, 2, 3]) + rng.choice([0, 0, 1, 1, 2, 3])) / 2 for _ in range(n - 1)]
    return scores, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--instances", type=int, default=5)
    args = parser.parse_args()
    print(f"n = {args.sentences} sentences, min_block_tokens 200, lambda 0.5")
    print(f"{'instance':>8}{'ours s':>9}{'authors s':>11}{'speed-up':>10}{'ours obj':>10}{'authors obj':>13}")
    speedups, wins = [], 0
    for seed in range(args.instances):
        scores, tokens = instance(args.sentences, seed)
        start = time.perf_counter()
        ours = segment(scores, tokens)
        ours_time = time.perf_counter() - start
        start = time.perf_counter()
        theirs = authors_dp(scores, tokens)
        their_time = time.perf_counter() - start
        ours_value, their_value = objective(ours, scores, tokens), objective(theirs, scores, tokens)
        wins += ours_value >= their_value - 1e-12
        speedups.append(their_time / ours_time)
        print(
            f"{seed:>8}{ours_time:>9.2f}{their_time:>11.2f}{their_time / ours_time:>9.1f}x"
            f"{ours_value:>10.4f}{their_value:>13.4f}"
        )
    print(
        f"\nobjective >= authors' on {wins}/{args.instances} instances; "
        f"median speed-up {statistics.median(speedups):.1f}x"
    )


if __name__ == "__main__":
    main()

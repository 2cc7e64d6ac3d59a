"""Segmentation: our exact solver against the authors' DP as published, and that DP vectorised in NumPy.

Baselines (both approximate: the objective does not decompose over blocks, so a DP that keeps one
best partial segmentation per (sentence, block count) can miss the optimum):

* published: the authors' `segment_variance_dp` (microsoft/memento, data/pipeline/segment.py),
  reimplemented faithfully: a table dp[i][k] of (objective, score sum, size sum, squared-size sum,
  previous end), every block's tokens summed from its slice, k up to max_blocks, the best k in
  [min_blocks, max_blocks] read off dp[n][k], one block when none is reachable. Token counts are
  given instead of computed with tiktoken.
* vectorised: the same recurrence, one NumPy [i, j] matrix per block count (same tie-breaking, so
  the same blocks).

Ours (`memento.data.segment.segment`) is exact. Random instances shaped like real traces
(8-90 tokens a sentence, scores 0-3 averaged over two passes); the three solvers run interleaved
(rotating order), `--repeats` times each per instance; the table shows the median time with the
min-max spread and each solver's objective.

    PYTHONPATH=src .venv/bin/python bench/segment.py    # n = 400, 5 instances, 3 repeats; then 400 small ones
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from memento.data.segment import objective, segment
from results import add_results_flag, table, write_results

Blocks = list[tuple[int, int]]


def published_dp(
    scores: list[float],
    token_counts: list[int],
    min_blocks: int,
    max_blocks: int,
    min_block_tokens: int,
    variance_weight: float,
) -> Blocks:
    """The authors' DP as published (slice sums, one best partial per (i, k))."""
    n = len(token_counts)
    dp: list[list[tuple[float, float, int, int, int] | None]] = [[None] * (max_blocks + 1) for _ in range(n + 1)]
    dp[0][0] = (0.0, 0.0, 0, 0, -1)
    for i in range(1, n + 1):
        for k in range(1, min(i, max_blocks) + 1):
            best = None
            for j in range(0, i):
                previous = dp[j][k - 1]
                if previous is None:
                    continue
                _, total_score, sum_sizes, sum_squares, _ = previous
                block_size = sum(token_counts[j:i])
                if block_size < min_block_tokens:
                    continue
                boundary = 0.0 if j == 0 else scores[j - 1]
                total_score, sum_sizes = total_score + boundary, sum_sizes + block_size
                sum_squares = sum_squares + block_size * block_size
                mean = sum_sizes / k
                std = math.sqrt(max(0, sum_squares / k - mean * mean))
                value = total_score / k - variance_weight * (std / mean if mean > 0 else 0)
                if best is None or value > best[0]:
                    best = (value, total_score, sum_sizes, sum_squares, j)
            if best is not None:
                dp[i][k] = best
    best_k, best_value = None, -math.inf
    for k in range(min_blocks, max_blocks + 1):
        state = dp[n][k]
        if state is not None and state[0] > best_value:
            best_k, best_value = k, state[0]
    if best_k is None:
        return [(0, n - 1)]
    blocks, i = [], n
    for k in range(best_k, 0, -1):
        state = dp[i][k]
        assert state is not None
        blocks.append((state[4], i - 1))
        i = state[4]
    return blocks[::-1]


def vectorised_dp(
    scores: list[float],
    token_counts: list[int],
    min_blocks: int,
    max_blocks: int,
    min_block_tokens: int,
    variance_weight: float,
) -> Blocks:
    """The published recurrence, one [i, j] matrix per block count (in-place, into reused buffers)."""
    n = len(token_counts)
    prefix = np.concatenate([[0], np.cumsum(token_counts)]).astype(np.float64)
    entry = np.concatenate([[0.0], np.asarray(scores, dtype=np.float64), [0.0]])  # boundary crossed entering at j
    size = prefix[:, None] - prefix[None, :]  # [i, j]: tokens of sentences j..i-1 (exact in float64)
    size_squared = size * size
    blocked = (size < min_block_tokens) | ~np.tri(n + 1, k=-1, dtype=bool)
    total, sums, squares = np.zeros(n + 1), np.zeros(n + 1), np.zeros(n + 1)
    reached = np.zeros(n + 1, dtype=bool)
    reached[0] = True
    mean, work, value = (np.empty_like(size) for _ in range(3))
    rows = np.arange(n + 1)
    layers, finals = [], {}
    for k in range(1, max_blocks + 1):
        np.add(sums[None, :], size, out=mean)
        mean /= k
        np.add(squares[None, :], size_squared, out=work)
        work /= k
        work -= mean * mean
        np.maximum(work, 0, out=work)
        np.sqrt(work, out=work)
        with np.errstate(divide="ignore", invalid="ignore"):
            work /= mean  # cv = std / mean (mean > 0 wherever a block is allowed)
        np.multiply(work, -variance_weight, out=value)
        value += ((total + entry) / k)[None, :]
        value[blocked | ~reached[None, :]] = -np.inf
        choice = value.argmax(axis=1)
        best = value[rows, choice]
        reached = np.isfinite(best)
        total = (total + entry)[choice]
        sizes = size[rows, choice]
        sums, squares = sums[choice] + sizes, squares[choice] + sizes * sizes
        layers.append(choice)
        if reached[n]:
            finals[k] = best[n]
        if not reached.any():
            break
    best_k, best_value = None, -math.inf
    for k in range(min_blocks, max_blocks + 1):
        if k in finals and finals[k] > best_value:
            best_k, best_value = k, finals[k]
    if best_k is None:
        return [(0, n - 1)]
    blocks, i = [], n
    for k in range(best_k, 0, -1):
        j = int(layers[k - 1][i])
        blocks.append((j, i - 1))
        i = j
    return blocks[::-1]


def instance(n: int, seed: int) -> tuple[list[float], list[int]]:
    rng = random.Random(seed)
    tokens = [rng.randint(8, 90) for _ in range(n)]
    scores = [(rng.choice([0, 0, 0, 1, 1, 2, 3]) + rng.choice([0, 0, 1, 1, 2, 3])) / 2 for _ in range(n - 1)]
    return scores, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--instances", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-blocks", type=int, default=10)
    parser.add_argument("--max-blocks", type=int, default=20)
    parser.add_argument("--min-block-tokens", type=int, default=200)
    parser.add_argument("--variance-weight", type=float, default=1.0)
    parser.add_argument("--small-instances", type=int, default=400, help="objective check on n = 8-40 (0: skip)")
    add_results_flag(parser, "segment")
    args = parser.parse_args()
    settings = (args.min_blocks, args.max_blocks, args.min_block_tokens, args.variance_weight)
    solvers: dict[str, Callable[[list[float], list[int]], Blocks]] = {
        "published": lambda s, t: published_dp(s, t, *settings),
        "vectorised": lambda s, t: vectorised_dp(s, t, *settings),
        "ours": lambda s, t: segment(
            s,
            t,
            min_block_tokens=args.min_block_tokens,
            variance_penalty=args.variance_weight,
            min_blocks=args.min_blocks,
            max_blocks=args.max_blocks,
        ),
    }
    print("command:", " ".join([sys.executable, *sys.argv]))
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(
        f"n = {args.sentences} sentences, K in [{args.min_blocks}, {args.max_blocks}], "
        f"min_block_tokens {args.min_block_tokens}, variance weight {args.variance_weight}, "
        f"{args.repeats} interleaved repeats\n"
    )
    header = "".join(f"{name + ' s':>22}" for name in solvers) + "".join(f"{name + ' obj':>16}" for name in solvers)
    print(f"{'instance':>8}{header}")
    times: dict[str, list[float]] = {name: [] for name in solvers}
    ratios: dict[str, list[float]] = {"published": [], "vectorised": []}
    exact_wins = strictly_better = 0
    for seed in range(args.instances):
        scores, tokens = instance(args.sentences, seed)
        runs: dict[str, list[float]] = {name: [] for name in solvers}
        results: dict[str, Blocks] = {}
        names = list(solvers)
        for repeat in range(args.repeats):
            for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
                start = time.perf_counter()
                results[name] = solvers[name](scores, tokens)
                runs[name].append(time.perf_counter() - start)
        values = {
            name: objective(blocks, scores, tokens, variance_penalty=args.variance_weight)
            for name, blocks in results.items()
        }
        assert results["vectorised"] == results["published"], "the vectorised DP must reproduce the published one"
        exact_wins += values["ours"] >= max(values.values()) - 1e-12
        strictly_better += values["ours"] > values["published"] + 1e-12
        cells = ""
        for name in solvers:
            median = statistics.median(runs[name])
            times[name].append(median)
            cells += f"{median:>10.3f} [{min(runs[name]):.3f}-{max(runs[name]):.3f}]"
        for baseline in ratios:
            ratios[baseline].append(statistics.median(runs[baseline]) / statistics.median(runs["ours"]))
        print(f"{seed:>8}{cells}" + "".join(f"{values[name]:>16.5f}" for name in solvers))
    print()
    for baseline, values in ratios.items():
        print(
            f"ours vs {baseline}: median speed-up {statistics.median(values):.1f}x "
            f"(per instance {min(values):.1f}x-{max(values):.1f}x)"
        )
    print(
        f"ours reaches the best objective of the three on {exact_wins}/{args.instances} instances, "
        f"strictly beats the published DP on {strictly_better}"
    )
    missed = small_instance_check(args.small_instances, args.variance_weight) if args.small_instances else ""
    speed_ups = {baseline: statistics.median(values) for baseline, values in ratios.items()}
    write_results(
        args.write_results,
        "segment",
        provenance=[f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}"],
        headline={
            "what": f"exact segmentation, n = {args.sentences} sentences",
            "figure": f"{speed_ups['published']:.0f}x faster than the authors' DP as published "
            f"({speed_ups['vectorised']:.1f}x its NumPy-vectorised form)",
        },
        tables=[
            table(
                f"n = {args.sentences} sentences, {args.instances} instances, {args.repeats} interleaved repeats",
                ["ours vs", "median speed-up", "per instance"],
                [
                    [baseline, f"{speed_ups[baseline]:.1f}x", f"{min(values):.1f}x-{max(values):.1f}x"]
                    for baseline, values in ratios.items()
                ],
            )
        ],
        notes=[
            f"ours reaches the best objective of the three on {exact_wins}/{args.instances} instances, "
            f"strictly beats the published DP on {strictly_better}",
            *([missed] if missed else []),
        ],
    )


def small_instance_check(count: int, variance_weight: float) -> str:
    """Objective only: how often the published DP misses the optimum on small random instances."""
    missed, compared, gaps = 0, 0, []
    for seed in range(count):
        rng = random.Random(seed)
        n = rng.randint(8, 40)
        tokens = [rng.randint(8, 90) for _ in range(n)]
        scores = [rng.randint(0, 6) / 2 for _ in range(n - 1)]
        low = rng.randint(1, 4)
        high = low + rng.randint(0, 6)
        published = published_dp(scores, tokens, low, high, 100, variance_weight)
        if not low <= len(published) <= high:
            continue  # no K in range fits: the published pipeline falls back to one block, ours does not
        ours = segment(
            scores, tokens, min_block_tokens=100, variance_penalty=variance_weight, min_blocks=low, max_blocks=high
        )
        theirs_value = objective(published, scores, tokens, variance_penalty=variance_weight)
        ours_value = objective(ours, scores, tokens, variance_penalty=variance_weight)
        assert ours_value >= theirs_value - 1e-12
        compared += 1
        if ours_value > theirs_value + 1e-12:
            missed += 1
            gaps.append(ours_value - theirs_value)
    line = (
        f"small instances (n 8-40, min_block_tokens 100, K range 1-10): the published DP misses the optimum on "
        f"{missed}/{compared}" + (f", by {statistics.median(gaps):.4f} (median) up to {max(gaps):.4f}" if gaps else "")
    )
    print(line)
    return line


if __name__ == "__main__":
    main()

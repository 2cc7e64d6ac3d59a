"""Long chains of thought through `memento data build --offline`'s stages: split, score, segment, 10 KB to 2 MB.

Synthetic long traces are real ones concatenated: the OpenThoughts trace's thinking and the blocks of
the three MEMENTO traces (../shared/data, else examples/traces), in turn, paragraph after paragraph,
cut at the size wanted. Each measurement runs in a fresh process (so peak memory is its own), for
this tree's src/ ("new") and a baseline tree ("base", e.g. main before the fix), interleaved with the
order rotating, `--repeats` times. Printed per size: sentences, the median seconds of each stage with
the min-max spread, base/new ratios, peak resident memory; then each stage's growth exponent (the
slope of log time against log size, least squares over the sizes measured; 1 = linear, 2 = quadratic).
The baseline is run only up to `--baseline-max-kb` (before the fix, 2 MB took ~10 minutes and its
segmentation alone four [n, n] float matrices: ~17 GB at 23,000 sentences). Both trees must split
into the same sentences and reach the same segmentation objective: the table says so.

    git archive d12f66a src | tar -x -C /tmp/rela_base
    PYTHONPATH=src .venv/bin/python bench/long_trace.py --baseline /tmp/rela_base/src
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT.parent / "shared" / "data", Path("/work/shared/data"), ROOT / "examples" / "traces"]
STAGES = ("split", "score", "segment")
SIZES_KB = (10, 20, 40, 80, 160, 320, 640, 1280, 2048)


def real_texts() -> list[str]:
    """The reasoning of every real trace found: the OpenThoughts thinking, then each MEMENTO trace's blocks."""
    folder = next(path for path in SOURCES if (path / "openthoughts_example_trace.jsonl").is_file())
    cot = json.loads((folder / "openthoughts_example_trace.jsonl").read_text().splitlines()[0])["cot"]
    texts = [cot.split("</think>")[0].removeprefix("<think>").strip()]
    for name in ("response", "code", "science"):
        segments = json.loads((folder / f"memento_trace_{name}.json").read_text())["segments"]
        texts.append("\n\n".join(s["text"].strip() for s in segments if s.get("type") == "block"))
    return texts


def long_trace(size: int) -> str:
    """`size` characters of real traces, concatenated in turn."""
    texts, parts, total, index = real_texts(), [], 0, 0
    while total < size:
        parts.append(texts[index % len(texts)])
        total += len(parts[-1]) + 2
        index += 1
    return "\n\n".join(parts)[:size]


def measure(size: int) -> dict[str, float | int | str]:
    """One run of the three stages on a `size`-character trace (in this process: the `--worker` side)."""
    from memento.data.build import BuildOptions
    from memento.data.score import score_offline
    from memento.data.segment import objective, segment
    from memento.data.split import approximate_tokens, split_sentences

    options, text = BuildOptions(), long_trace(size)
    start = time.perf_counter()
    sentences = split_sentences(text).sentences
    split_done = time.perf_counter()
    scores = score_offline(sentences)
    score_done = time.perf_counter()
    tokens = [approximate_tokens(s) for s in sentences]
    blocks = segment(
        scores,
        tokens,
        min_block_tokens=options.min_block_tokens,
        variance_penalty=options.variance_penalty,
        min_blocks=options.min_blocks,
        max_blocks=options.max_blocks,
    )
    segment_done = time.perf_counter()
    return {
        "sentences": len(sentences),
        "sentences_hash": hash(tuple(sentences)) & 0xFFFFFFFF,
        "objective": objective(blocks, scores, tokens, variance_penalty=options.variance_penalty),
        "split": split_done - start,
        "score": score_done - split_done,
        "segment": segment_done - score_done,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_worker(src: Path, size: int) -> dict[str, float | int | str]:
    environment = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    command = [sys.executable, __file__, "--worker", str(size)]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def growth(sizes: list[int], times: list[float]) -> float | None:
    """Least-squares slope of log time against log size."""
    points = [(math.log(s), math.log(t)) for s, t in zip(sizes, times, strict=True) if t > 0]
    if len(points) < 2:
        return None
    mean_x = statistics.mean(x for x, _ in points)
    mean_y = statistics.mean(y for _, y in points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", type=Path, default=None, help="src/ of the baseline tree (omit: new only)")
    parser.add_argument("--baseline-max-kb", type=int, default=320, help="largest size the baseline runs at")
    parser.add_argument("--sizes-kb", type=int, nargs="+", default=list(SIZES_KB))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(measure(args.worker)))
        return
    trees = {"new": ROOT / "src"} | ({"base": args.baseline} if args.baseline else {})
    print(f"# {' '.join(sys.argv)}")
    print(f"# {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    results: dict[tuple[str, int], list[dict]] = {}
    turn = 0
    for size_kb in args.sizes_kb:
        names = [n for n in trees if n == "new" or size_kb <= args.baseline_max_kb]
        for _ in range(args.repeats):
            turn += 1
            for name in names[turn % len(names) :] + names[: turn % len(names)]:  # the order rotates
                results.setdefault((name, size_kb), []).append(run_worker(trees[name], size_kb * 1024))
        line = [f"{size_kb:5d} KB", f"{results[('new', size_kb)][0]['sentences']:6d} sentences"]
        for name in names:
            runs = results[(name, size_kb)]
            total = [sum(r[s] for s in STAGES) for r in runs]
            line.append(f"{name}: " + " ".join(f"{s} {spread([r[s] for r in runs])}" for s in STAGES))
            line.append(f"total {spread(total)} peak {max(r['peak_mib'] for r in runs):.0f} MiB")
        if "base" in names:
            new, base = results[("new", size_kb)], results[("base", size_kb)]
            ratios = [statistics.median([r[s] for r in base]) / statistics.median([r[s] for r in new]) for s in STAGES]
            same = new[0]["sentences_hash"] == base[0]["sentences_hash"]
            gap = new[0]["objective"] - base[0]["objective"]
            line.append("base/new " + " ".join(f"{s} {r:.1f}x" for s, r in zip(STAGES, ratios, strict=True)))
            line.append(f"same sentences {'yes' if same else 'NO'}, objective new-base {gap:+.2e}")
        print(" | ".join(line), flush=True)
    print("growth exponent (log time / log size; 1 = linear, 2 = quadratic):")
    for name in trees:
        sizes = [kb for kb in args.sizes_kb if (name, kb) in results]
        exponents = []
        for stage in (*STAGES, "total"):
            times = [
                statistics.median(
                    [sum(r[s] for s in STAGES) if stage == "total" else r[stage] for r in results[(name, kb)]]
                )
                for kb in sizes
            ]
            exponent = growth(sizes, times)
            exponents.append(f"{stage} {exponent:.2f}" if exponent is not None else f"{stage} -")
        print(f"  {name} ({sizes[0]}-{sizes[-1]} KB): " + ", ".join(exponents))


if __name__ == "__main__":
    main()

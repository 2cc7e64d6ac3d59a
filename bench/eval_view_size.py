"""`memento eval view` against the size of a run's responses: 10 KB to 4 MB, time and peak memory.

Each run is written as `memento eval` writes one (manifest.json naming a local benchmark file and
the toy model, whose character-level tokenizer the curves replay with, so a response of N bytes is
~N tokens; samples.jsonl with a run's record fields; summary.json), with `--samples` responses of the
size asked in mode memento. A response is a memento trace (blocks of ~1.5 KB, each closed by a
memento) or, with `--shape plain`, one text with no block at all (a model that never closed one).

Each measurement is the whole command, `python -m memento.cli eval view RUN --output PAGE`, in a fresh
process: wall seconds and the process's peak resident memory (`wait4`'s ru_maxrss). This tree's src/
("new") and a baseline tree ("base", e.g. main before the fix) run interleaved, the order rotating,
`--repeats` times. Printed per size: median seconds (min-max), peak MiB, base/new ratios, and whether
both pages are identical; then, above the smallest run (whose start-up and imports every run pays),
seconds and MiB per MiB of responses and the growth exponent of that extra (slope of log extra
against log extra size; 1 = linear).

    git -C /work/main archive HEAD src | tar -x -C /tmp/view_base
    PYTHONPATH=src python bench/eval_view_size.py --baseline /tmp/view_base/src
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES_KB = (10, 40, 160, 640, 1024, 2048, 4096)
BLOCK_CHARS, MEMENTO_CHARS = 1500, 240
SENTENCE = "We check the case n = {i}: the sum of the first terms is even, so the carry is 0. "


def _text(chars: int, offset: int = 0) -> str:
    parts, total, index = [], 0, offset
    while total < chars:
        parts.append(SENTENCE.format(i=index))
        total += len(parts[-1])
        index += 1
    return "".join(parts)[:chars]


def response(size: int, shape: str) -> str:
    """A response of about `size` characters: a memento trace of blocks, or (`plain`) text with no block."""
    from memento.format import BLOCK_END, BLOCK_START, SUMMARY_END, SUMMARY_START, THINK_END, THINK_START

    answer = f"{THINK_END}\nThe answer is \\boxed{{7}}"
    if shape == "plain":
        return THINK_START + _text(size) + answer
    blocks, total, index = [], 0, 0
    while total < size:
        block = f"{BLOCK_START}{_text(BLOCK_CHARS, index)}{BLOCK_END}{SUMMARY_START}{_text(MEMENTO_CHARS, index)}"
        blocks.append(block + SUMMARY_END)
        total += len(blocks[-1])
        index += 40
    return THINK_START + "".join(blocks) + answer


def write_run(directory: Path, size: int, samples: int, shape: str) -> int:
    """A finished run of one problem with `samples` responses of ~`size` characters; returns the bytes."""
    from memento.eval.benchmarks.sources import load_benchmark
    from memento.eval.report.summary import summarize
    from memento.eval.run.modes import builtin_mode
    from memento.toy import CHECKPOINT

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "problems.jsonl").write_text(json.dumps({"id": "p0", "problem": "What is 3 + 4?", "answer": "7"}))
    modes = {"memento": builtin_mode("memento", mask_delimiters=False).describe()}
    manifest = {"model": str(CHECKPOINT), "benchmark": str(directory / "problems.jsonl"), "backend": "hf"}
    (directory / "manifest.json").write_text(json.dumps({**manifest, "modes": modes}))
    text = response(size, shape)
    lines = []
    for sample in range(samples):
        record = {
            *(("mode", "memento"), ("id", "p0"), ("sample", sample), ("seed", sample), ("response", text)),
            *(("finish_reason", "length"), ("correct", True), ("answer", "7"), ("status", "correct")),
            *(("well_formed", shape == "blocks"), ("blocks", text.count("<|block_end|>")), ("seconds", 1.0)),
            *(("mementos", text.count("<|summary_end|>")), ("prompt_tokens", 40), ("tokens", len(text))),
            *(("kv_peak_tokens", 2000), ("kv_peak_bytes", 2000 * 147456), ("kv_auc_gb_ktok", 0.1)),
        }
        lines.append(json.dumps(dict(record)) + "\n")
    (directory / "samples.jsonl").write_text("".join(lines))
    benchmark = load_benchmark(directory / "problems.jsonl", use_hub=False)
    summary = summarize({"memento": [json.loads(line) for line in lines]}, benchmark, samples_per_problem=samples)
    (directory / "summary.json").write_text(json.dumps(summary))
    return len(text.encode()) * samples


def measure(src: Path, run_dir: Path, page: Path) -> dict[str, float]:
    """`memento eval view` of `run_dir` with `src` on PYTHONPATH, in a fresh process: seconds, peak MiB."""
    environment = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "memento.cli", "eval", "view", str(run_dir), "--output", str(page)]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    error = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise RuntimeError(f"{src}: eval view exited {process.returncode}: {error[-2000:]}")
    return {"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024}


def growth(sizes: list[float], values: list[float]) -> float | None:
    """Least-squares slope of log value against log size."""
    points = [(math.log(s), math.log(v)) for s, v in zip(sizes, values, strict=True) if v > 0]
    if len(points) < 2:
        return None
    mean_x, mean_y = statistics.mean(x for x, _ in points), statistics.mean(y for _, y in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, default=None, help="src/ of the baseline tree (omit: new only)")
    parser.add_argument("--baseline-max-kb", type=int, default=4096, help="largest response the baseline runs")
    parser.add_argument("--sizes-kb", type=int, nargs="+", default=list(SIZES_KB))
    parser.add_argument("--samples", type=int, default=1, help="responses of that size in the run")
    parser.add_argument("--shape", choices=["blocks", "plain"], default="blocks")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    trees = {"new": ROOT / "src"} | ({"base": args.baseline} if args.baseline else {})
    print(f"# {' '.join(sys.argv)}")
    print(f"# {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    print(f"# runs of {args.samples} x one response of the size (shape {args.shape}), the toy model's tokenizer")
    table: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trees}
    turn = 0
    with tempfile.TemporaryDirectory() as temporary:
        for size_kb in args.sizes_kb:
            run_dir = Path(temporary) / f"run{size_kb}"
            total = write_run(run_dir, size_kb * 1024, args.samples, args.shape)
            names = [n for n in trees if n == "new" or size_kb <= args.baseline_max_kb]
            results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
            for _ in range(args.repeats):
                turn += 1
                for name in names[turn % len(names) :] + names[: turn % len(names)]:  # the order rotates
                    results[name].append(measure(trees[name], run_dir, Path(temporary) / f"{name}.html"))
            line = [f"{size_kb:5d} KB x {args.samples} ({total / 2**20:6.2f} MiB)"]
            for name in names:
                seconds = [r["seconds"] for r in results[name]]
                peak = max(r["peak_mib"] for r in results[name])
                table[name].append((total, statistics.median(seconds), peak))
                line.append(f"{name}: {spread(seconds)}, peak {peak:6.0f} MiB")
            if "base" in names:
                new, base = results["new"], results["base"]
                time_ratio = statistics.median(r["seconds"] for r in base) / statistics.median(
                    r["seconds"] for r in new
                )
                memory_ratio = max(r["peak_mib"] for r in base) / max(r["peak_mib"] for r in new)
                same = (Path(temporary) / "new.html").read_bytes() == (Path(temporary) / "base.html").read_bytes()
                line.append(f"base/new time {time_ratio:.1f}x memory {memory_ratio:.1f}x; same page: {same}")
            print(" | ".join(line), flush=True)
    print("above the smallest run (start-up, imports and the tokenizer's load are fixed costs):")
    for name, rows in table.items():
        if len(rows) < 3:
            continue
        (size0, seconds0, peak0), (size, seconds, peak) = rows[0], rows[-1]
        extra = [(r[0] - size0, r[1] - seconds0, r[2] - peak0) for r in rows[1:]]
        time_growth = growth([e[0] for e in extra], [e[1] for e in extra])
        memory_growth = growth([e[0] for e in extra], [e[2] for e in extra])
        mib = (size - size0) / 2**20
        print(
            f"  {name}: {(seconds - seconds0) / mib:.2f} s and {(peak - peak0) / mib:.0f} MiB per MiB of responses "
            f"(largest run); growth exponent of the extra time {time_growth:.2f}, extra memory {memory_growth:.2f} "
            "(1 = linear)"
        )


if __name__ == "__main__":
    main()

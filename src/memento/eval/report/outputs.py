"""A finished run -> its summary, written as summary.json beside the two plots."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from memento.eval.report.plots import plot_accuracy_vs_kv, plot_kv_cdf
from memento.eval.report.summary import summarize
from memento.eval.run.runner import FinishedRun

SUMMARY_FILE = "summary.json"
ACCURACY_PLOT = "accuracy_vs_kv.png"
CDF_PLOT = "kv_peak_cdf.png"


def summarize_run(run: FinishedRun) -> dict[str, Any]:
    """Summarize the wanted samples of `run`, write summary.json and the plots, return the summary."""
    records_by_mode: dict[str, list[dict[str, Any]]] = {mode.name: [] for mode in run.modes}
    for key, record in run.store.records.items():
        if key in run.wanted:
            records_by_mode[key[0]].append(record)
    geometry = (
        None
        if run.kv_geometry is None
        else {"name": run.kv_geometry.name, "bytes_per_token": run.kv_geometry.bytes_per_token}
    )
    options = run.options
    summary = summarize(
        records_by_mode,
        run.benchmark,
        model=options.model,
        backend=options.backend,
        samples_per_problem=options.samples,
        sampling=dataclasses.asdict(options.sampling),
        seed=options.seed,
        kv_geometry=geometry,
        approximate_tokens=run.approximate_tokens,
        output=str(run.store.directory),
        mode_settings={mode.name: mode.describe() for mode in run.modes},
        **run.context,
    )
    write_outputs(summary, records_by_mode, run.store.directory)
    return summary


def write_outputs(summary: dict[str, Any], records_by_mode: dict[str, list[dict[str, Any]]], output: Path) -> None:
    """summary.json (written whole, then renamed into place) and the two plots."""
    output.mkdir(parents=True, exist_ok=True)
    temporary = output / (SUMMARY_FILE + ".tmp")
    temporary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, output / SUMMARY_FILE)
    plot_accuracy_vs_kv(summary, output / ACCURACY_PLOT)
    plot_kv_cdf(records_by_mode, summary["benchmark"], output / CDF_PLOT)

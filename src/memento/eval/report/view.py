"""`memento eval view`: one self-contained HTML page of a run, for reading it offline from file://.

Everything is inline: style, script (view.css, view.js beside this file) and the run's data as JSON.
The summary, plots and problem table are plain HTML (one ``data-problem-id`` row per problem, one
``data-verdict`` / ``data-mode`` mark per sample); a problem's page, its responses and their blocks
are built by the script from the JSON only when opened, so a long run's text is never all in the DOM.
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any

from memento.eval.report.console import summary_rows
from memento.eval.report.view_data import load_run
from memento.eval.report.view_runs import check_comparable, merge, run_names, series
from memento.eval.report.view_svg import accuracy_vs_kv, mode_colors, peak_cdf
from memento.eval.report.view_table import controls, table

ASSETS = Path(__file__).resolve().parent


def _summary_html(summary: dict[str, Any] | None, run: str | None = None) -> str:
    if not summary or not summary.get("modes"):
        return f"<p class='note'>{escape(run + ': ') if run else ''}no summary yet</p>"
    title, columns, rows = summary_rows(summary)
    title = f"{run}: {title}" if run else title
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table class='summary'><caption>{escape(title)}</caption><tr>{head}</tr>{body}</table>"


def _invocations(data: dict[str, Any]) -> str:
    lines = []
    for invocation in data["invocations"]:
        versions = ", ".join(f"{k} {v}" for k, v in invocation.get("versions", {}).items())
        command = " ".join(invocation.get("command", []))
        lines.append(
            f"<li><code>{escape(command)}</code> <span class='note'>{escape(invocation.get('time', ''))}; "
            f"{escape(versions)}</span></li>"
        )
    return f"<ul class='invocations'>{''.join(lines)}</ul>" if lines else "<p class='note'>command not recorded</p>"


def _json_script(data: dict[str, Any]) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"<script type='application/json' id='run-data'>{text}</script>"


def _plots(runs: list[dict[str, Any]], data: dict[str, Any], colors: dict[str, str]) -> str:
    several = len(runs) > 1
    points: dict[str, Any] = {}
    peaks: dict[str, list[float]] = {}
    for run, name in zip(runs, data["runs"], strict=True):
        for mode, figures in ((run["summary"] or {}).get("modes") or {}).items():
            points[series(name, mode, several)] = figures
        for mode in run["modes"]:
            peaks[series(name, mode, several)] = [
                s["peak"]
                for p in data["problems"]
                for s in p["samples"]
                if s["run"] == name and s["mode"] == mode and s["peak"] is not None
            ]
    if not points:
        return ""
    return f"<div class='plots'>{accuracy_vs_kv({'modes': points}, colors)}{peak_cdf(peaks, colors)}</div>"


def _header(runs: list[dict[str, Any]], data: dict[str, Any]) -> str:
    several = len(runs) > 1
    header = ""
    for run, name in zip(runs, data["runs"], strict=True):
        origin = f"graded from {run['graded_from']}" if run["graded_from"] else f"backend {run['backend']}"
        label = f"{name}: run {run['run']}; {origin}" if several else f"run {run['run']}; {origin}"
        label += f"; model {run['model']}" if several and run["model"] else ""
        header += f"<p class='note'>{escape(label)}</p>"
        prefix = f"{name}: " if several else ""
        header += "".join(f"<p class='note'>{escape(prefix + note)}</p>" for note in run["notes"])
    counts = {n: sum(any(s["run"] == n for s in p["samples"]) for p in data["problems"]) for n in data["runs"]}
    if len(set(counts.values())) > 1:
        shown = ", ".join(f"{name} {count}" for name, count in counts.items())
        header += f"<p class='note'>problems per run: {escape(shown)}; a problem a run lacks is left blank</p>"
    return header


def render_page(*runs: dict[str, Any], names: list[str] | None = None) -> str:
    """The whole page of one or more runs (each `view_data.load_run`'s, of one benchmark: `view_runs`), side by
    side; `names` are the runs' names on the page (default: `view_runs.run_names` of their folders)."""
    names = names or run_names([Path(run["run"]) for run in runs])
    check_comparable(list(runs))
    data = merge(list(runs), names)
    several = len(runs) > 1
    colors = mode_colors([series(n, m, several) for r, n in zip(runs, names, strict=True) for m in r["modes"]])
    first = runs[0]
    who = " vs ".join(names) if several else first["model"] or first["run"]
    title = f"memento eval: {first['benchmark'] or '?'} — {who}"
    summaries = "".join(_summary_html(r["summary"], n if several else None) for r, n in zip(runs, names, strict=True))
    invocations = "".join(_invocations(r) for r in runs)
    client = {key: data[key] for key in ("runs", "modes", "reference", "references", "problems", "approximate_curves")}
    client["colors"] = colors
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(title)}</title><style>{(ASSETS / 'view.css').read_text(encoding='utf-8')}</style></head>"
        f"<body><header><h1>{escape(title)}</h1>{_header(list(runs), data)}</header>"
        f"<section id='overview'><div class='wide'>{summaries}</div>{_plots(list(runs), data, colors)}{invocations}"
        f"</section><main><section id='list'>{controls(data)}{table(data)}</section>"
        "<section id='problem'><p class='note'>select a problem (click, or j / k)</p></section></main>"
        f"{_json_script(client)}<script>{(ASSETS / 'view.js').read_text(encoding='utf-8')}</script></body></html>"
    )


def write_page(page: str, output: Path) -> Path:
    """Write `page` to `output` whole: into a hidden file beside it, then renamed into place; nothing is left
    behind when it fails. An `OSError` names `output`, not the temporary file."""
    temporary = output.with_name(f".{output.name}.partial")
    try:
        temporary.write_text(page, encoding="utf-8")
        os.replace(temporary, output)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(output)) from None
    finally:
        temporary.unlink(missing_ok=True)
    return output


def write_view(run_dir: Path, output: Path) -> Path:
    """Write the page of the run in `run_dir` to `output` (`write_page`)."""
    return write_page(render_page(load_run(run_dir)), output)

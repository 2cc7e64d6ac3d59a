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
from memento.eval.report.view_svg import accuracy_vs_kv, mode_colors, peak_cdf

ASSETS = Path(__file__).resolve().parent


def _summary_html(summary: dict[str, Any] | None) -> str:
    if not summary or not summary.get("modes"):
        return "<p class='note'>no summary yet</p>"
    title, columns, rows = summary_rows(summary)
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table class='summary'><caption>{escape(title)}</caption><tr>{head}</tr>{body}</table>"


def _share(samples: list[dict[str, Any]], mode: str) -> float | None:
    mine = [s for s in samples if s["mode"] == mode]
    return sum(s["verdict"] == "correct" for s in mine) / len(mine) if mine else None


def _row(problem: dict[str, Any], modes: list[str], reference: str | None) -> str:
    samples = problem["samples"]
    shares = {mode: _share(samples, mode) for mode in modes}
    worse = [
        mode
        for mode in modes
        if reference and mode != reference and None not in (shares[mode], shares[reference])
        if shares[mode] < shares[reference]  # type: ignore[operator]
    ]
    cells = [f"<td class='pid'>{escape(problem['id'])}</td>", f"<td>{escape(problem['subject'])}</td>"]
    for mode in modes:
        marks = "".join(
            f"<span class='v {s['verdict']}' data-mode='{escape(mode)}' data-sample='{s['sample']}' "
            f"data-verdict='{s['verdict']}' title='{escape(mode)} sample {s['sample']}: {s['verdict']}'></span>"
            for s in samples
            if s["mode"] == mode
        )
        share = shares[mode]
        cells.append(f"<td data-key='{'' if share is None else f'{share:.4f}'}'>{marks}</td>")
    for mode in modes:
        peaks = [s["peak"] for s in samples if s["mode"] == mode and s["peak"] is not None]
        mean = sum(peaks) / len(peaks) if peaks else None
        key, shown = ("", "") if mean is None else (f"{mean:.1f}", f"{mean:.0f}")
        cells.append(f"<td class='num' data-key='{key}'>{shown}</td>")
    verdicts = " ".join(f"{s['mode']}:{s['verdict']}" for s in samples)
    return (
        f"<tr data-problem-id='{escape(problem['id'])}' data-subject='{escape(problem['subject'])}' "
        f"data-worse='{escape(' '.join(worse))}' data-verdicts='{escape(verdicts)}' tabindex='0'>{''.join(cells)}</tr>"
    )


def _table(data: dict[str, Any]) -> str:
    modes = data["modes"]
    head = "<th data-sort='id'>problem</th><th data-sort='subject'>subject</th>"
    head += "".join(f"<th data-sort='col'>{escape(m)}</th>" for m in modes)
    head += "".join(f"<th data-sort='col'>peak KV {escape(m)}</th>" for m in modes)
    rows = "".join(_row(p, modes, data["reference"]) for p in data["problems"])
    return f"<table id='problems'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _controls(data: dict[str, Any]) -> str:
    modes, reference = data["modes"], data["reference"]
    subjects = sorted({p["subject"] for p in data["problems"] if p["subject"]})
    mode_options = "".join(f"<option value='{escape(m)}'>{escape(m)}</option>" for m in modes)
    compare = "".join(
        f"<option value='{escape(m)}'>fails with {escape(m)}, passes with {escape(reference)}</option>"
        for m in modes
        if reference and m != reference
    )
    subject_options = "".join(f"<option value='{escape(s)}'>{escape(s)}</option>" for s in subjects)
    return (
        "<div class='controls'>"
        "<input id='search' type='search' placeholder='search problem text or id'>"
        "<select id='verdict'><option value=''>any verdict</option><option value='any-wrong'>some sample wrong"
        "</option><option value='all-correct'>all correct</option><option value='all-wrong'>all wrong</option>"
        f"</select><select id='verdict-mode'><option value=''>in any mode</option>{mode_options}</select>"
        f"<select id='compare'><option value=''>no comparison</option>{compare}</select>"
        f"<select id='subject'><option value=''>every subject</option>{subject_options}</select>"
        "<span id='count'></span><span class='keys'>j / k: next / previous problem</span></div>"
    )


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


def render_page(data: dict[str, Any]) -> str:
    """The whole page of `data` (`view_data.load_run`)."""
    colors = mode_colors(data["modes"])
    summary = data["summary"]
    plots = ""
    if summary and summary.get("modes"):
        peaks = {
            mode: [
                s["peak"] for p in data["problems"] for s in p["samples"] if s["mode"] == mode and s["peak"] is not None
            ]
            for mode in data["modes"]
        }
        plots = f"<div class='plots'>{accuracy_vs_kv(summary, colors)}{peak_cdf(peaks, colors)}</div>"
    title = f"memento eval: {data['benchmark'] or '?'} — {data['model'] or data['run']}"
    notes = "".join(f"<p class='note'>{escape(n)}</p>" for n in data["notes"])
    origin = f"graded from {data['graded_from']}" if data["graded_from"] else f"backend {data['backend']}"
    client = {key: data[key] for key in ("modes", "reference", "problems", "approximate_curves")}
    client["colors"] = colors
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(title)}</title><style>{(ASSETS / 'view.css').read_text(encoding='utf-8')}</style></head>"
        f"<body><header><h1>{escape(title)}</h1><p class='note'>run {escape(data['run'])}; {escape(origin)}</p>"
        f"{notes}</header>"
        f"<section id='overview'>{_summary_html(summary)}{plots}{_invocations(data)}</section>"
        f"<main><section id='list'>{_controls(data)}{_table(data)}</section>"
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

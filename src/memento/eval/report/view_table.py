"""The page's problem table and its filter controls, as HTML: one ``data-problem-id`` row per problem, one mark per
sample (``data-run``, ``data-mode``, ``data-sample``, ``data-verdict``), one verdict column per (mode, run)
that has samples, and on a page of one run one peak KV column per mode. A problem a run lacks is an empty cell
(class ``gap``)."""

from __future__ import annotations

from html import escape
from typing import Any


def _share(samples: list[dict[str, Any]], run: str, mode: str) -> float | None:
    mine = [s for s in samples if s["run"] == run and s["mode"] == mode]
    return sum(s["verdict"] == "correct" for s in mine) / len(mine) if mine else None


def columns(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(mode, run) of each verdict column, mode by mode."""
    return [(mode, run) for mode in data["modes"] for run in data["runs"] if mode in data["run_modes"][run]]


def _worse(samples: list[dict[str, Any]], data: dict[str, Any]) -> list[str]:
    """Modes that pass less often than their run's reference mode on this problem, in some run."""
    worse: dict[str, None] = {}
    for run in data["runs"]:
        reference = data["references"][run]
        if reference is None or (base := _share(samples, run, reference)) is None:
            continue
        for mode in data["run_modes"][run]:
            share = _share(samples, run, mode)
            if mode != reference and share is not None and share < base:
                worse[mode] = None
    return list(worse)


def _changed(samples: list[dict[str, Any]], data: dict[str, Any]) -> list[str]:
    """Modes whose share of correct samples differs between two runs that both have this problem in that mode."""
    changed = []
    for mode in data["modes"]:
        shares = {_share(samples, run, mode) for run in data["runs"]} - {None}
        if len(shares) > 1:
            changed.append(mode)
    return changed


def _row(problem: dict[str, Any], data: dict[str, Any]) -> str:
    samples = problem["samples"]
    cells = [f"<td class='pid'>{escape(problem['id'])}</td>", f"<td>{escape(problem['subject'])}</td>"]
    for mode, run in columns(data):
        mine = [s for s in samples if s["run"] == run and s["mode"] == mode]
        if not mine:
            cells.append(
                f"<td class='gap' data-key='' title='{escape(problem['id'])} is not in run {escape(run)}'></td>"
            )
            continue
        marks = "".join(
            f"<span class='v {s['verdict']}' data-run='{escape(run)}' data-mode='{escape(mode)}' "
            f"data-sample='{s['sample']}' data-verdict='{s['verdict']}' "
            f"title='{escape(run)} {escape(mode)} sample {s['sample']}: {s['verdict']}'></span>"
            for s in mine
        )
        cells.append(f"<td class='marks' data-key='{_share(samples, run, mode):.4f}'>{marks}</td>")
    for mode, run in columns(data) if len(data["runs"]) == 1 else ():
        peaks = [s["peak"] for s in samples if s["run"] == run and s["mode"] == mode and s["peak"] is not None]
        mean = sum(peaks) / len(peaks) if peaks else None
        key, shown = ("", "") if mean is None else (f"{mean:.1f}", f"{mean:.0f}")
        cells.append(f"<td class='num' data-key='{key}'>{shown}</td>")
    verdicts = " ".join(f"{s['mode']}:{s['verdict']}" for s in samples)
    changed = f" data-changed='{escape(' '.join(_changed(samples, data)))}'" if len(data["runs"]) > 1 else ""
    return (
        f"<tr data-problem-id='{escape(problem['id'])}' data-subject='{escape(problem['subject'])}' "
        f"data-worse='{escape(' '.join(_worse(samples, data)))}' data-verdicts='{escape(verdicts)}'{changed} "
        f"tabindex='0'>{''.join(cells)}</tr>"
    )


def _breakable(name: str) -> str:
    """`name` escaped, with a line break allowed after each ``_`` (no_eviction over two lines in a narrow column)."""
    return escape(name).replace("_", "_<wbr>")


def _heading(label: str, mode: str, run: str, several: bool) -> str:
    under = f" <span class='run'>{_breakable(run)}</span>" if several else ""
    return f"<th data-sort='col'>{label}{_breakable(mode)}{under}</th>"


def table(data: dict[str, Any]) -> str:
    several = len(data["runs"]) > 1
    head = "<th data-sort='id'>problem</th><th data-sort='subject'>subject</th>"
    head += "".join(_heading("", mode, run, several) for mode, run in columns(data))
    if not several:  # side by side, the runs' verdicts take the width; each sample's peak is on its problem's page
        head += "".join(_heading("peak KV ", mode, run, several) for mode, run in columns(data))
    rows = "".join(_row(p, data) for p in data["problems"])
    return f"<table id='problems'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def controls(data: dict[str, Any]) -> str:
    modes, references = data["modes"], set(data["references"].values()) - {None}
    subjects = sorted({p["subject"] for p in data["problems"] if p["subject"]})
    mode_options = "".join(f"<option value='{escape(m)}'>{escape(m)}</option>" for m in modes)
    reference = " / ".join(sorted(references))
    compare = "".join(
        f"<option value='{escape(m)}'>fails with {escape(m)}, passes with {escape(reference)}</option>"
        for m in modes
        if references and m not in references
    )
    changed = (
        "<select id='changed'><option value=''>every problem</option>"
        "<option value='changed'>changed verdict between runs</option></select>"
        if len(data["runs"]) > 1
        else ""
    )
    subject_options = "".join(f"<option value='{escape(s)}'>{escape(s)}</option>" for s in subjects)
    return (
        "<div class='controls'>"
        "<input id='search' type='search' placeholder='search problem text or id'>"
        "<select id='verdict'><option value=''>any verdict</option><option value='any-wrong'>some sample wrong"
        "</option><option value='all-correct'>all correct</option><option value='all-wrong'>all wrong</option>"
        f"</select><select id='verdict-mode'><option value=''>in any mode</option>{mode_options}</select>"
        f"<select id='compare'><option value=''>no comparison</option>{compare}</select>{changed}"
        f"<select id='subject'><option value=''>every subject</option>{subject_options}</select>"
        "<span id='count'></span><span class='keys'>j / k: next / previous problem</span></div>"
    )

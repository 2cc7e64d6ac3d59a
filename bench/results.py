"""A bench's figures as a file: written by the bench (`--write-results`), rendered into the docs.

One results file per bench, `docs/figures/NAME.json`:

    {"bench": "segment", "command": "python bench/segment.py", "provenance": ["python 3.11.9, ..."],
     "source": "measured", "headline": {"what": ..., "figure": ...},
     "tables": [{"title": ..., "columns": [...], "rows": [[...], ...]}], "notes": [...]}

`source` is "measured" when the bench wrote the file itself; a file transcribed from an earlier
printout says so there. Pure Python (no torch), so the docs build and its test import it cheaply.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"


def add_results_flag(parser: argparse.ArgumentParser, name: str) -> None:
    """`--write-results [PATH]`: write the figures to PATH (default docs/figures/NAME.json)."""
    parser.add_argument(
        "--write-results",
        nargs="?",
        const=str(FIGURES / f"{name}.json"),
        metavar="PATH",
        help=f"write the figures as JSON for the docs (default path: docs/figures/{name}.json)",
    )


def table(title: str, columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    """One table of a results file; every cell is shown as written (format numbers before)."""
    if any(len(row) != len(columns) for row in rows):
        raise ValueError(f"table {title!r}: every row needs {len(columns)} cells")
    return {"title": title, "columns": columns, "rows": [[str(cell) for cell in row] for row in rows]}


def write_results(
    path: str | None,
    name: str,
    *,
    provenance: list[str],
    tables: list[dict[str, Any]],
    headline: dict[str, str] | None = None,
    notes: list[str] | None = None,
) -> None:
    """Write the bench's results file (nothing when `path` is None) and say where."""
    if path is None:
        return
    results = {
        "bench": name,
        "command": shlex.join(["python", *_relative_argv()]),
        "provenance": provenance,
        "source": "measured",
        "headline": headline,
        "tables": tables,
        "notes": notes or [],
    }
    Path(path).write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"results written to {path}")


def _relative_argv() -> list[str]:
    script = Path(sys.argv[0]).resolve()
    root = FIGURES.parents[1]
    shown = str(script.relative_to(root)) if script.is_relative_to(root) else sys.argv[0]
    argv, kept, index = sys.argv[1:], [], 0
    while index < len(argv):  # drop --write-results and its value: the command shown is the measurement
        if argv[index] == "--write-results":
            index += 2 if index + 1 < len(argv) and not argv[index + 1].startswith("-") else 1
            continue
        if not argv[index].startswith("--write-results="):
            kept.append(argv[index])
        index += 1
    return [shown, *kept]


def load(name: str, figures: Path = FIGURES) -> dict[str, Any]:
    """The results file of bench `name`; a missing or malformed one raises ValueError naming it."""
    path = figures / f"{name}.json"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read the results file ({error})") from error
    for key in ("bench", "command", "source", "tables"):
        if key not in results:
            raise ValueError(f"{path}: missing field {key!r}")
    return results


def render(results: dict[str, Any]) -> str:
    """Markdown: the command, where the figures come from, each table and the notes."""
    lines = ["```bash", results["command"], "```", ""]
    if results["source"] != "measured":
        lines += [f"*{results['source']}*", ""]
    if results.get("provenance"):
        lines += ["Measured with: " + "; ".join(results["provenance"]) + ".", ""]
    for each in results["tables"]:
        if each.get("title"):
            lines += [f"**{each['title']}**", ""]
        lines.append("| " + " | ".join(each["columns"]) + " |")
        lines.append("|" + " --- |" * len(each["columns"]))
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in each["rows"]]
        lines.append("")
    lines += [f"- {note}" for note in results.get("notes", [])]
    return "\n".join(lines).rstrip() + "\n"


def headline_rows(names: list[str], figures: Path = FIGURES) -> str:
    """The README's headline table: one row per results file, with the command that produced it."""
    lines = ["| what | figure | command |", "| --- | --- | --- |"]
    for name in names:
        results = load(name, figures)
        if not results.get("headline"):
            raise ValueError(f"{figures / (name + '.json')}: no headline")
        headline = results["headline"]
        lines.append(f"| {headline['what']} | {headline['figure']} | `{results['command']}` |")
    return "\n".join(lines) + "\n"

"""MkDocs hook: `<!-- figures: NAME -->` in a page becomes the tables of docs/figures/NAME.json.

The results files are written by the bench scripts (`--write-results`, `bench/results.py` owns the
format and its rendering), so a page never shows a figure typed by hand. A missing or malformed
file fails the build.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

_RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results.py"
_spec = importlib.util.spec_from_file_location("memento_bench_results", _RESULTS)
assert _spec and _spec.loader
results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results)

PLACEHOLDER = re.compile(r"<!-- figures: (\w+) -->")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each figures placeholder with the rendered results file."""
    return PLACEHOLDER.sub(lambda match: results.render(results.load(match.group(1))), markdown)

"""MkDocs hooks: `<!-- figures: NAME -->` in a page becomes the tables of docs/figures/NAME.json; search
works offline (`on_post_build`).

The results files are written by the bench scripts (`--write-results`, `bench/results.py` owns the
format and its rendering), so a page never shows a figure typed by hand. A missing or malformed
file fails the build.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

_RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results.py"
_spec = importlib.util.spec_from_file_location("memento_bench_results", _RESULTS)
assert _spec and _spec.loader
results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results)

PLACEHOLDER = re.compile(r"<!-- figures: (\w+) -->")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each figures placeholder with the rendered results file."""
    return PLACEHOLDER.sub(lambda match: results.render(results.load(match.group(1))), markdown)


SHIM_URL = "https://unpkg.com/iframe-worker/shim"
SHIM = Path(sys.prefix) / "share" / "iframe-worker" / "package" / "shim" / "index.js"
"""Material's `offline` plugin loads this shim (search without a web server) from unpkg; the Makefile installs
the same npm package (iframe-worker 1.0.4, MIT) into the venv and the site serves that copy."""


def on_post_build(config: Any) -> None:
    """Serve the iframe-worker shim from the site itself, so search works from file:// with no network."""
    site = Path(config["site_dir"])
    pages = [page for page in site.rglob("*.html") if SHIM_URL in page.read_text(encoding="utf-8")]
    if not pages:
        return
    if not SHIM.is_file():
        raise PluginError(f"{SHIM} is missing: `make docs` installs it (npm pack iframe-worker@1.0.4)")
    target = site / "assets" / "javascripts" / "iframe-worker-shim.js"
    shutil.copyfile(SHIM, target)
    for page in pages:
        local = os.path.relpath(target, page.parent).replace(os.sep, "/")
        page.write_text(page.read_text(encoding="utf-8").replace(SHIM_URL, local), encoding="utf-8")

"""The documentation site builds strictly and offline, its figures come from the results files, and every
code block of it is either run by the examples test or marked with a reason."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.pages import ROOT, pages, read_blocks

MKDOCS = ROOT / "mkdocs.yml"
_spec = importlib.util.spec_from_file_location("memento_bench_results", ROOT / "bench" / "results.py")
assert _spec and _spec.loader
results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results)


def _build(site: Path, config: Path = MKDOCS) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.docs
def test_the_site_builds_strictly_offline(tmp_path: Path) -> None:
    done = _build(tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    built = {path.name for path in (tmp_path / "site").glob("*.html")}
    assert {f"{path.stem}.html" for path in pages()[1:]} <= built
    evaluation = (tmp_path / "site" / "evaluation.html").read_text(encoding="utf-8")
    assert "99.0% ± 1.0%" in evaluation  # the eval_toy results file, rendered by docs/hooks.py
    api = (tmp_path / "site" / "api.html").read_text(encoding="utf-8")
    assert "keep_last_n_blocks" in api and "MementoGenerator" in api  # from the docstrings
    for page in (tmp_path / "site").glob("*.html"):  # offline: no web fonts or remote scripts
        text = page.read_text(encoding="utf-8")
        assert "fonts.googleapis" not in text and not re.search(r"<script[^>]+src=\"https?://", text), page.name


@pytest.mark.slow
@pytest.mark.docs
def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# x\n\n[gone](missing.md)\n", encoding="utf-8")
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        MKDOCS.read_text(encoding="utf-8").replace("docs_dir: docs", f"docs_dir: {docs}").split("\nnav:")[0]
        + "\ntheme:\n  name: material\n  font: false\nvalidation:\n  links:\n    not_found: warn\n",
        encoding="utf-8",
    )
    done = _build(tmp_path / "site", config)
    assert done.returncode != 0 and "missing.md" in done.stdout + done.stderr


def test_every_block_is_run_or_marked() -> None:
    counts = {}
    for path in pages():
        blocks, problems = read_blocks(path)
        assert not problems, problems
        runnable = [block for block in blocks if block.language in ("bash", "python")]
        assert all(block.runs or block.not_run.strip() for block in runnable)
        counts[path.name] = (sum(block.runs for block in runnable), sum(not block.runs for block in runnable))
    executed = sum(run for run, _ in counts.values())
    marked = sum(mark for _, mark in counts.values())
    print(f"docs examples: {executed} executed, {marked} marked not-run")
    assert marked == sum(1 for path in pages() for block in read_blocks(path)[0] if block.not_run)
    assert executed >= 25, "fewer examples run than before: mark a block not-run only when it cannot run here"


def test_the_readme_headline_figures_match_the_results_files() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- headline-figures: ([\w ]+) -->\n(.*?)<!-- /headline-figures -->", readme, re.S)
    assert match, "README.md: no headline-figures block"
    assert match[2] == results.headline_rows(match[1].split())


def test_every_figures_placeholder_names_a_results_file() -> None:
    names = set()
    for path in pages():
        names |= set(re.findall(r"<!-- figures: (\w+) -->", path.read_text(encoding="utf-8")))
    files = {path.stem for path in (ROOT / "docs" / "figures").glob("*.json")}
    assert names == files, f"placeholders without a file: {names - files}; files no page shows: {files - names}"
    for name in names:
        rendered = results.render(results.load(name))
        assert rendered.count("| --- |") >= 1 and results.load(name)["command"] in rendered

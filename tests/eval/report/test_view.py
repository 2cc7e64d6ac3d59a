"""`memento eval view` opened in a real headless Chromium (Debian's `chromium`, driven by playwright): the
toy run (three modes) and `memento eval grade` results with wrong answers planted; every problem and
sample with its verdict, filters, search, j/k and the URL fragment, a block expanded, no request
leaving the page and no console error. Also a run still being written, and bad RUN_DIRs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path

import pytest

from memento.cli import main
from memento.format import BLOCK_END, BLOCK_START, THINK_END
from memento.toy import CHECKPOINT
from tests.eval.conftest import TOY_LIMIT, TOY_MODES, TOY_SAMPLES

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PLANTED = {("memento", "toy-0"), ("memento", "toy-2"), ("restart", "toy-2")}
"""(mode, problem) whose every sample gets a wrong final answer before grading."""


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def view(run_dir: Path, output: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "memento.cli", "eval", "view", str(run_dir), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert output.is_file() and done.stdout.strip() == str(output)
    return output


class Page:
    """The page at `path` in Chromium, with every request and console error it makes recorded."""

    def __init__(self, path: Path) -> None:
        from playwright.sync_api import sync_playwright

        self.url = path.resolve().as_uri()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        context = self.browser.new_context(viewport={"width": 1500, "height": 1000})
        context.route("**/*", self._route)
        self.page = context.new_page()
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _route(self, route) -> None:
        self.requests.append(route.request.url)
        if route.request.url.split("#")[0] == self.url:
            route.continue_()
        else:
            route.abort()

    def open(self, fragment: str = "") -> None:
        self.page.goto(self.url + fragment)
        self.page.wait_for_selector("#count:not(:empty)")

    def close(self) -> None:
        self.browser.close()
        self._playwright.stop()

    def visible_problems(self) -> list[str]:
        return self.page.eval_on_selector_all(
            "tr[data-problem-id]:not([hidden])", "rows => rows.map(r => r.dataset.problemId)"
        )


@pytest.fixture(scope="module")
def graded(toy_run, tmp_path_factory) -> Path:
    """`memento eval grade --output` of the toy run's samples with wrong answers planted (PLANTED)."""
    run_dir, _ = toy_run
    return grade_planted(run_dir, tmp_path_factory.mktemp("graded"), "graded", PLANTED)


def grade_planted(
    run_dir: Path, folder: Path, name: str, planted: Collection[tuple[str, str]], kept: Collection[str] | None = None
) -> Path:
    """`memento eval grade --output folder/name` of `run_dir`'s samples (only the problems in `kept`, when given),
    every sample of a (mode, problem) in `planted` given a wrong final answer first."""
    lines = []
    for record in records(run_dir):
        if kept is not None and record["id"] not in kept:
            continue
        response = record["response"]
        if (record["mode"], record["id"]) in planted:
            response = response[: response.index(THINK_END) + len(THINK_END)] + "\nThe answer is 999"
        lines.append(json.dumps({k: record[k] for k in ("mode", "id", "sample")} | {"response": response}))
    (folder / "responses.jsonl").write_text("\n".join(lines) + "\n")
    argv = [
        *("eval", "grade", "--benchmark", "toy", "--limit", str(TOY_LIMIT), "--tokenizer", str(CHECKPOINT)),
        *("--model-config", str(CHECKPOINT), "--responses", str(folder / "responses.jsonl")),
        *("--output", str(folder / name)),
    ]
    assert main(argv) == 0
    return folder / name


def check_every_sample(page: Page, run_dir: Path) -> None:
    samples = records(run_dir)
    problems = {record["id"] for record in samples}
    assert sorted(page.page.eval_on_selector_all("tr[data-problem-id]", "r => r.map(e => e.dataset.problemId)")) == (
        sorted(problems)
    )
    for record in samples:
        mark = page.page.locator(
            f"tr[data-problem-id='{record['id']}'] [data-mode='{record['mode']}'][data-sample='{record['sample']}']"
        )
        assert mark.count() == 1
        assert mark.get_attribute("data-verdict") == ("correct" if record["correct"] else "wrong")


@pytest.mark.slow
def test_the_toy_run_in_chromium(toy_run, tmp_path):
    run_dir, summary = toy_run
    page = Page(view(run_dir, tmp_path / "toy.html"))
    try:
        page.open()
        check_every_sample(page, run_dir)
        assert page.page.locator("[data-verdict]").count() == TOY_LIMIT * TOY_SAMPLES * len(TOY_MODES)
        table = page.page.locator("table.summary").inner_text()
        for mode, figures in summary["modes"].items():
            assert re.search(rf"{mode}\s+{figures['pass_at_1']:.1%} ± {figures['pass_at_1_stderr']:.1%}", table)
        assert page.page.locator("svg.plot").count() == 2
        embedded = page.page.evaluate("JSON.parse(document.getElementById('run-data').textContent)")
        for problem in embedded["problems"]:  # each sawtooth peaks where the run's replay did
            for sample in problem["samples"]:
                assert max(tokens for _, tokens in sample["curve"]) == sample["peak"], (problem["id"], sample)
        assert "--benchmark toy" in page.page.locator(".invocations").inner_text()

        page.page.fill("#search", "toy-3")
        assert page.visible_problems() == ["toy-3"]
        page.page.fill("#search", "")

        page.open("#problem=toy-1&mode=memento&sample=1")
        card = page.page.locator(".sample.selected")
        assert card.get_attribute("data-mode") == "memento" and card.get_attribute("data-sample") == "1"
        response = next(r for r in records(run_dir) if (r["mode"], r["id"], r["sample"]) == ("memento", "toy-1", 1))
        first_block = response["response"].split(BLOCK_START, 1)[1].split(BLOCK_END, 1)[0]
        block = card.locator("details.block").first
        assert block.locator(".body").count() == 0  # not in the DOM until opened
        block.locator("summary").click()
        assert block.locator(".body").inner_text() == first_block.strip()
        assert card.locator("svg.sawtooth polyline").count() == 2  # beside the no_eviction sample
        assert card.locator("svg.sawtooth .eviction").count() == response["mementos"]  # each block goes
        page.page.screenshot(path=str(tmp_path / "problem.png"), full_page=True)

        page.page.keyboard.press("j")
        assert page.page.evaluate("location.hash") == "#problem=toy-2"
        assert page.page.locator("h2[data-open-problem='toy-2']").count() == 1
        page.page.keyboard.press("k")
        assert page.page.evaluate("location.hash") == "#problem=toy-1"
        assert page.requests and all(url.split("#")[0] == page.url for url in page.requests), page.requests
        assert page.errors == []
    finally:
        page.close()


@pytest.mark.slow
def test_graded_results_and_the_filters_in_chromium(graded, tmp_path):
    page = Page(view(graded, tmp_path / "graded.html"))
    try:
        page.open()
        check_every_sample(page, graded)
        wrong = {(r["mode"], r["id"]) for r in records(graded) if not r["correct"]}
        assert wrong == PLANTED
        page.page.select_option("#compare", "memento")  # fails with memento, passes with no_eviction
        assert page.visible_problems() == ["toy-0", "toy-2"]
        assert page.page.locator("#count").inner_text() == f"2 of {TOY_LIMIT} problems"
        page.page.select_option("#compare", "")
        page.page.select_option("#verdict", "any-wrong")
        page.page.select_option("#verdict-mode", "restart")
        assert page.visible_problems() == ["toy-2"]
        page.page.select_option("#verdict", "all-correct")
        assert page.visible_problems() == ["toy-0", "toy-1", "toy-3"]
        page.page.locator("#problems th", has_text="peak KV no_eviction").click()
        peaks = page.page.eval_on_selector_all(
            "tr[data-problem-id]", "rows => rows.map(r => parseFloat(r.cells[r.cells.length - 2].dataset.key))"
        )
        assert peaks == sorted(peaks)
        assert page.errors == [] and all(url.split("#")[0] == page.url for url in page.requests)
    finally:
        page.close()


@pytest.mark.slow
def test_a_run_still_being_written(toy_run, tmp_path):
    """No summary.json yet and a torn last line: the page shows what is there, the file is left as it is."""
    run_dir, _ = toy_run
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(run_dir / "manifest.json", partial / "manifest.json")
    lines = (run_dir / "samples.jsonl").read_text().splitlines(keepends=True)
    text = "".join(lines[:5]) + lines[5][:40]
    (partial / "samples.jsonl").write_text(text)
    html = view(partial, tmp_path / "partial.html").read_text()
    assert (partial / "samples.jsonl").read_text() == text
    assert "in progress: 5 samples so far" in html
    assert len(re.findall(r"<tr data-problem-id=", html)) == len({json.loads(line)["id"] for line in lines[:5]})
    assert len(re.findall(r"data-verdict=", html)) == 5


@pytest.mark.parametrize(
    ("argument", "expected"),
    [("nowhere", "not a directory"), (".", "no samples in samples.jsonl")],
)
def test_a_bad_run_dir_is_one_line(tmp_path, capsys, monkeypatch, argument, expected):
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "view", argument]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RUN_DIR" in err and expected in err

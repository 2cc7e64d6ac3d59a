"""Issue 33 item 8, in a real headless Chromium at 1280 x 900 (one browser, two pages built once): the toy run's page
and the page of two runs side by side (the toy run, and `memento eval grade` of three of its problems with wrong
answers planted). The plots' labels never overlap, the CDF legend has colour keys, the problem table fits, and
the runs' verdicts are marked with their run, with a filter for the problems whose verdict changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from memento.cli import main
from tests.eval.report.test_view import CHROMIUM, FLAGS, grade_planted, records, view

PLANTED = {("memento", "toy-0"), ("no_eviction", "toy-1")}
"""(mode, problem) whose every sample the second run gets wrong; it has no toy-3 at all."""
KEPT = {"toy-0", "toy-1", "toy-2"}


@pytest.fixture(scope="module")
def second_run(toy_run, tmp_path_factory) -> Path:
    run_dir, _ = toy_run
    return grade_planted(run_dir, tmp_path_factory.mktemp("second"), "rl", PLANTED, kept=KEPT)


class Pages:
    """The module's pages, each built and opened once when first asked for, in one Chromium at 1280 x 900; the
    console errors and outside requests of each in `problems`."""

    def __init__(self, toy_run, second_run, folder: Path) -> None:
        from playwright.sync_api import sync_playwright

        self.run_dir, self.second_run, self.folder = toy_run[0], second_run, folder
        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        self.context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
        self.opened: dict = {}
        self.problems: dict[str, list[str]] = {}

    def __getitem__(self, name: str):
        if name not in self.opened:
            path = self.folder / f"{name}.html"
            if name == "single":
                view(self.run_dir, path)
            else:
                assert main(["eval", "view", str(self.run_dir), str(self.second_run), "--output", str(path)]) == 0
            page = self.context.new_page()
            errors = self.problems.setdefault(name, [])
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: request.url.startswith("file:") or errors.append(request.url))
            page.goto(path.resolve().as_uri())
            page.wait_for_selector("#count:not(:empty)")
            self.opened[name] = page
        return self.opened[name]

    def close(self) -> None:
        self.browser.close()
        self._playwright.stop()


@pytest.fixture(scope="module")
def pages(toy_run, second_run, tmp_path_factory):
    opened = Pages(toy_run, second_run, tmp_path_factory.mktemp("pages"))
    yield opened
    opened.close()


def _boxes(page, selector: str) -> list[dict]:
    return page.eval_on_selector_all(
        selector,
        "nodes => nodes.map(n => { const b = n.getBoundingClientRect(); return {text: n.textContent, "
        "left: b.left, right: b.right, top: b.top, bottom: b.bottom}; })",
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["single", "compare"])
def test_accuracy_labels_never_overlap(pages, name):
    """memento and restart sit at nearly the same peak KV and the same pass@1: their labels used to overlap."""
    page = pages[name]
    labels = _boxes(page, "svg.plot[aria-label='accuracy vs peak KV'] text[fill]")
    assert len(labels) == (3 if name == "single" else 6), labels
    for index, first in enumerate(labels):
        for second in labels[index + 1 :]:
            apart = (
                first["right"] <= second["left"]
                or second["right"] <= first["left"]
                or first["bottom"] <= second["top"]
                or second["bottom"] <= first["top"]
            )
            assert apart, (first, second)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["single", "compare"])
def test_every_cdf_curve_has_a_legend_swatch_of_its_colour(pages, name):
    page = pages[name]
    pairs = page.eval_on_selector_all(
        "svg.plot[aria-label='peak KV, CDF over samples'] polyline",
        """curves => curves.map(c => {
            const name = c.querySelector('title').textContent;
            const entry = Array.from(c.ownerSVGElement.querySelectorAll('.legend-entry'))
                .find(e => e.textContent.trim() === name);
            const swatch = entry && entry.querySelector('.swatch');
            return [name, getComputedStyle(c).stroke, swatch ? getComputedStyle(swatch).stroke : null];
        })""",
    )
    assert len(pairs) == (3 if name == "single" else 6)
    for curve, stroke, swatch in pairs:
        assert swatch == stroke, (curve, stroke, swatch)
    assert len({stroke for _, stroke, _ in pairs}) == len(pairs)  # the keys tell the curves apart


@pytest.mark.slow
@pytest.mark.parametrize("name", ["single", "compare"])
def test_the_problem_table_fits_at_1280_px(pages, name):
    page = pages[name]
    fit = page.evaluate(
        """() => { const list = document.getElementById('list'), table = document.getElementById('problems');
        return {list: [list.scrollWidth, list.clientWidth], table: table.getBoundingClientRect().right,
                listRight: list.getBoundingClientRect().right,
                page: [document.documentElement.scrollWidth, document.documentElement.clientWidth]}; }"""
    )
    assert fit["list"][0] <= fit["list"][1], fit
    assert fit["table"] <= fit["listRight"] + 0.5, fit
    assert fit["page"][0] <= fit["page"][1], fit


@pytest.mark.slow
def test_two_runs_side_by_side(pages, toy_run, second_run):
    page = pages["compare"]
    run_dir, _ = toy_run
    for name, folder in (("run", run_dir), ("rl", second_run)):
        for record in records(folder):
            mark = page.locator(
                f"tr[data-problem-id='{record['id']}'] [data-run='{name}'][data-mode='{record['mode']}']"
                f"[data-sample='{record['sample']}']"
            )
            assert mark.count() == 1, (name, record["id"])
            assert mark.get_attribute("data-verdict") == ("correct" if record["correct"] else "wrong")
    assert page.locator("[data-verdict][data-run='rl']").count() == len(records(second_run))
    assert page.locator("tr[data-problem-id='toy-3'] td.gap").count() == 3  # rl has no toy-3, in each mode

    def shares(folder: Path) -> dict:
        table: dict = {}
        for r in records(folder):
            table.setdefault((r["mode"], r["id"]), []).append(bool(r["correct"]))
        return {key: sum(v) / len(v) for key, v in table.items()}

    first, second = shares(run_dir), shares(second_run)
    changed = sorted({i for (mode, i), share in second.items() if first[mode, i] != share})
    assert changed and set(changed) <= KEPT
    page.select_option("#changed", "changed")
    assert page.eval_on_selector_all("tr[data-problem-id]:not([hidden])", "r => r.map(e => e.dataset.problemId)") == (
        changed
    )
    page.select_option("#verdict-mode", "no_eviction")
    only = sorted({i for (mode, i), share in second.items() if mode == "no_eviction" and first[mode, i] != share})
    assert page.eval_on_selector_all("tr[data-problem-id]:not([hidden])", "r => r.map(e => e.dataset.problemId)") == (
        only
    )
    page.locator("tr[data-problem-id='toy-1'] [data-run='rl'][data-mode='no_eviction'][data-sample='1']").click()
    card = page.locator(".sample.selected")
    assert (card.get_attribute("data-run"), card.get_attribute("data-mode"), card.get_attribute("data-sample")) == (
        "rl",
        "no_eviction",
        "1",
    )
    assert card.get_attribute("data-verdict") == ("wrong" if ("no_eviction", "toy-1") in PLANTED else "correct")
    assert page.evaluate("location.hash") == "#problem=toy-1&run=rl&mode=no_eviction&sample=1"
    assert all(errors == [] for errors in pages.problems.values()), pages.problems

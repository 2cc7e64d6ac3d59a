"""The built site in a real headless Chromium, opened from the file system as the README says (issue 33
item 7): search works from file://, and at 1280 px no code block is cut or hidden under its copy button."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.test_site import _build
from tests.eval.report.test_view import CHROMIUM, FLAGS


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("site") / "site"
    done = _build(folder)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


def _page(browser, path: Path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    context.route("**/*", lambda route: (requests.append(route.request.url), route.continue_()))
    page = context.new_page()
    page.goto(path.resolve().as_uri())
    return page, requests


@pytest.mark.slow
@pytest.mark.docs
def test_search_works_from_the_file_system(site: Path, browser) -> None:
    page, requests = _page(browser, site / "index.html")
    search = page.locator("input.md-search__input")
    assert search.is_visible()  # Material hides the box when its index cannot load (file:// without `offline`)
    search.click()
    page.keyboard.type("keep_last_n_blocks")  # Material searches on key events
    results = page.locator(".md-search-result__item")
    results.first.wait_for(timeout=20_000)
    assert results.count() >= 3
    assert any(
        "attention" in (link or "")
        for link in page.eval_on_selector_all(
            ".md-search-result__link", "links => links.map(a => a.getAttribute('href'))"
        )
    )
    assert all(url.startswith("file://") for url in requests)  # nothing fetched from the network


@pytest.mark.slow
@pytest.mark.docs
@pytest.mark.parametrize("name", ["index.html", "cli.html", "serving.html", "training.html"])
def test_no_code_block_is_cut_or_under_its_copy_button_at_1280_px(site: Path, browser, name: str) -> None:
    page, _ = _page(browser, site / name)
    blocks = page.eval_on_selector_all(
        ".md-typeset pre > code",
        """codes => codes.map(code => {
            const box = code.getBoundingClientRect(), button = code.parentElement.querySelector('.md-clipboard');
            const range = document.createRange(); range.selectNodeContents(code);
            const text = Array.from(range.getClientRects());
            const covered = button ? text.some(r => {
                const b = button.getBoundingClientRect();
                return r.right > b.left && r.left < b.right && r.bottom > b.top && r.top < b.bottom && r.width > 0;
            }) : false;
            return {overflow: code.scrollWidth - code.clientWidth, right: box.right, covered,
                    text: code.textContent.slice(0, 60)};
        })""",
    )
    assert blocks, name
    width = page.evaluate("document.documentElement.clientWidth")
    for block in blocks:
        assert block["overflow"] <= 1 and block["right"] <= width, block
        assert not block["covered"], block

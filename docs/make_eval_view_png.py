"""Regenerate docs/eval_view.png from real runs: `memento eval` of the embedded toy model on 12 toy problems x 2
samples, at the paper's temperature 0.6 and at 1.8 (where it starts to fail), both runs on one
`memento eval view` page, filtered to the problems whose verdict changed between them, the first of them open
at a wrong sample of the second run (the list stays in view beside it), captured by Debian's headless Chromium
(playwright) at 1280 x 900.

    .venv/bin/python docs/make_eval_view_png.py [--runs runs/eval/view-png]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from memento.toy import CHECKPOINT

DOCS = Path(__file__).resolve().parent
OUTPUT = DOCS / "eval_view.png"
TEMPERATURES = ("0.6", "1.8")


def memento(*arguments: str) -> None:
    subprocess.run([sys.executable, "-m", "memento.cli", *arguments], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/eval/view-png"), help="where the two runs go")
    args = parser.parse_args()
    runs = [args.runs / f"toy-t{temperature}" for temperature in TEMPERATURES]
    for run, temperature in zip(runs, TEMPERATURES, strict=True):
        memento(
            *("eval", "--model", str(CHECKPOINT), "--benchmark", "toy", "--samples", "2", "--limit", "12"),
            *("--temperature", temperature, "--batch-size", "24", "--no-progress", "--output", str(run)),
        )
    page = args.runs / "compare.html"
    memento("eval", "view", *map(str, runs), "--output", str(page))

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.goto(page.resolve().as_uri())
        tab.wait_for_selector("#count:not(:empty)")
        tab.select_option("#changed", "changed")
        first = tab.locator("tr[data-problem-id]:not([hidden])").first
        problem = first.get_attribute("data-problem-id")
        wrong = first.locator(f"[data-run='{runs[1].name}'][data-verdict='wrong']").first
        (wrong if wrong.count() else first).click()
        tab.evaluate(  # from the heading of the sample's run and mode
            """() => { let node = document.querySelector('.sample.selected');
            while (node.tagName !== 'H3') node = node.previousElementSibling;
            node.scrollIntoView({block: 'start'}); }"""
        )
        tab.locator(".sample.selected details.block").nth(1).locator("summary").click()
        tab.screenshot(path=str(OUTPUT))
        browser.close()
    print(f"wrote {OUTPUT} ({problem} open)")


if __name__ == "__main__":
    main()

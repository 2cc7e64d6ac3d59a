"""Prints how many documentation examples ran and how many are marked not-run, with the reasons."""

from __future__ import annotations

from collections import Counter

from tests.docs.pages import all_blocks


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    blocks = [block for block in all_blocks() if block.language in ("bash", "python")]
    executed = sum(block.runs for block in blocks)
    reasons = Counter(block.not_run for block in blocks if block.not_run)
    terminalreporter.write_line(
        f"docs examples: {executed} run by tests/docs/test_examples.py, {sum(reasons.values())} marked not-run"
    )
    for reason, count in reasons.most_common():
        terminalreporter.write_line(f"  {count:>3} not-run: {reason}")

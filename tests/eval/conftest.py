"""The toy run shared by the eval tests that need a real finished run: the embedded toy model,
4 problems x 2 samples in modes memento, no_eviction and restart, through `memento eval`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from memento.toy import CHECKPOINT

TOY_LIMIT, TOY_SAMPLES = 4, 2
TOY_MODES = ("memento", "no_eviction", "restart")
TOY_COMMAND = [
    *(sys.executable, "-m", "memento.cli", "eval", "--model", str(CHECKPOINT), "--benchmark", "toy"),
    *("--samples", str(TOY_SAMPLES), "--limit", str(TOY_LIMIT), "--batch-size", "4", "--json", "--no-progress"),
]


def toy_eval(*arguments: str) -> dict:
    """`memento eval` of the toy run with `arguments`; its JSON summary."""
    done = subprocess.run([*TOY_COMMAND, *arguments], capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(output directory, summary) of the toy run, made once per session."""
    output = tmp_path_factory.mktemp("eval") / "run"
    return output, toy_eval("--output", str(output))

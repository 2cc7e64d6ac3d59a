"""examples/real_task.sh shrunken: the ledger task through data build -> train (memento, both stages, and the
plain-CoT baseline) -> eval per difficulty -> the figures file, plots and table.

Six training problems, one optimizer step per training run and a few new tokens per answer: not a result,
only the proof that the pieces fit together on the real model and that real_task.json comes out in the
issue's schema, with every mode at every difficulty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPOSITORY = Path(__file__).resolve().parents[2]
SIZES = {
    "LEVELS": "2,3,4",
    "TRAIN_PER_LEVEL": "2",
    "BATCH_SIZE": "6",
    "EVAL_MIDDLE": "2",
    "EVAL_OTHER": "1",
    "MAX_NEW_TOKENS": "12",
    "BUDGET": "150",
    "CHECKS": "0",
    "OMP_NUM_THREADS": "2",
}
MODES = {"memento", "no_eviction", "restart", "plain_cot", "memento_budget", "plain_cot_budget"}


def test_the_task_loop_runs_end_to_end(smollm2_checkpoint, smollm2_cache, tmp_path):
    out, figures = tmp_path / "real-task", tmp_path / "figures" / "real_task.json"
    environment = {
        **os.environ,
        **SIZES,
        "OUT": str(out),
        "FIGURES": str(figures),
        "BIN": str(Path(sys.executable).parent),
        "MEMENTO_CACHE": str(smollm2_cache),  # the session's conversion of the .gguf
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY / "src"), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        ["bash", "examples/real_task.sh"], cwd=REPOSITORY, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stages = [line.split("\t")[0] for line in (out / "times.tsv").read_text().splitlines()]
    # the middle difficulty (the headline) is evaluated first
    assert stages == ["inputs", "data-build", "train-memento", "train-plain", "eval-3", "eval-2", "eval-4"]
    state = json.loads((out / "state.json").read_text())
    assert state["data"]["blocks"] == 2 * (2 + 3 + 4) and state["data"]["lost_state"] == 0  # a block a transfer
    for stage in ("stage1-full", "stage2-memento"):
        assert (out / "model" / stage / "model.safetensors").is_file()
    plain = json.loads((out / "plain-model" / "memento_training.json").read_text())  # --stage full: one stage
    assert plain["stage"] == "full" and plain["examples"] == 6 and not (out / "plain-model" / "stage2-memento").exists()

    written = json.loads(figures.read_text())
    assert isinstance(written["model"], str) and isinstance(written["task"], str)
    assert written["budget_tokens"] == 150 and written["middle_difficulty"] == 3
    assert [level["difficulty"] for level in written["levels"]] == [2, 3, 4]
    for level in written["levels"]:
        assert set(level["modes"]) == MODES
        for mode in level["modes"].values():
            assert 0 <= mode["accuracy"] <= 1 and mode["se"] >= 0 and isinstance(mode["peak_kv_mean"], float)
            assert mode["problems"] == (2 if level["difficulty"] == 3 else 1)
        # under the budget a response counts only if right and within it: never more than without the budget
        for name in ("memento", "plain_cot"):
            assert level["modes"][f"{name}_budget"]["accuracy"] <= level["modes"][name]["accuracy"]
    assert written["bench"] == "real_task" and written["command"].startswith("LEVELS=2,3,4 ")
    assert written["command"].endswith("make real-task-demo")
    assert written["notes"][-1].startswith("wall time per stage: inputs ")
    table = (out / "table.md").read_text()
    assert len([line for line in table.splitlines() if line.startswith("| 3 |")]) == len(MODES)
    for plot in ("real_task_accuracy.png", "real_task_budget.png"):
        assert (figures.parent / plot).stat().st_size > 1000

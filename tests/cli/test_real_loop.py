"""examples/real_model.sh shrunken: the real SmolLM2 through data build -> train (both stages) -> eval -> kv.

A few MATH / GSM8K train solutions, one optimizer step per stage and a few new tokens per answer:
not a result, only the proof that the script's pieces fit together on the real model and that its
table comes out with every row and the `memento kv` cross-check.
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
    "MATH_TRAIN": "2",
    "GSM8K_TRAIN": "2",
    "EPOCHS": "1",
    "MEMENTO_EPOCHS": "1",
    "BATCH_SIZE": "4",
    "GSM8K_EVAL": "2",
    "MATH_EVAL": "1",
    "MAX_NEW_TOKENS": "12",
    "OMP_NUM_THREADS": "2",
}


def test_the_loop_runs_end_to_end(smollm2_checkpoint, smollm2_cache, tmp_path):
    out = tmp_path / "real"
    environment = {
        **os.environ,
        **SIZES,
        "OUT": str(out),
        "BIN": str(Path(sys.executable).parent),
        "MEMENTO_CACHE": str(smollm2_cache),  # the session's conversion of the .gguf
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY / "src"), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        ["bash", "examples/real_model.sh"], cwd=REPOSITORY, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stages = [line.split("\t")[0] for line in (out / "times.tsv").read_text().splitlines()]
    # `memento kv` runs on the memento outputs that parse as traces; a model trained one step rarely writes one
    replayed = [f"kv-{b}" for b in ("gsm8k", "math500") if (out / f"kv-{b}.jsonl").read_text().strip()]
    expected = ["inputs", "data-build", "train", "eval-gsm8k", "kv-gsm8k", "eval-math500", "kv-math500"]
    assert stages == [stage for stage in expected if not stage.startswith("kv-") or stage in replayed]
    assert len((out / "cot.jsonl").read_text().splitlines()) == 4
    for stage in ("stage1-full", "stage2-memento"):
        log = json.loads((out / "model" / stage / "memento_training.json").read_text())
        assert log["examples"] >= 1 and (out / "model" / stage / "model.safetensors").is_file()
    assert log["options"]["system_prompt"].startswith("You are a helpful AI assistant named SmolLM")
    table = (out / "table.md").read_text()
    for benchmark, problems in (("gsm8k", 2), ("math500", 1)):
        rows = [line for line in table.splitlines() if line.startswith(f"| {benchmark} |")]
        assert [row.split(" | ")[1] for row in rows] == ["base model", "memento, eviction", "memento, no eviction"]
        assert all(row.split(" | ")[2] == str(problems) for row in rows)
        samples = (out / f"eval-{benchmark}" / "samples.jsonl").read_text().splitlines()
        assert len(samples) == 3 * problems  # three modes, the same problems
    for benchmark in ("gsm8k", "math500"):  # the replay cross-check line of each benchmark, whichever form
        line = next(line for line in table.splitlines() if line.startswith(f"- {benchmark}: "))
        parsed = f"kv-{benchmark}" in replayed
        assert ("equal to eval's replay on" in line) == parsed and ("nothing for `memento kv`" in line) != parsed
    # the docs' results file from the same outputs: the table's rows, the KV lines and the stage times
    figures = tmp_path / "real_model.json"
    report = [sys.executable, "examples/real_model_report.py", "figures", str(out), str(figures)]
    subprocess.run(report, cwd=REPOSITORY, env=environment, check=True, capture_output=True)
    written = json.loads(figures.read_text())
    assert written["bench"] == "real_model" and written["source"] == "measured"
    rendered_rows = ["| " + " | ".join(row) + " |" for row in written["tables"][0]["rows"]]
    assert rendered_rows == [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert written["notes"][-1].startswith("wall time per stage: inputs ")

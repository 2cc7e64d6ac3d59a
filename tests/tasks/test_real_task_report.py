"""examples/real_task_report.py on a run folder written by hand: the figures file's checks and headline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
END = "<|im_end|>"


def _summary(accuracy: float, peak: float) -> dict[str, float | int]:
    return {
        "pass_at_1": accuracy,
        "pass_at_1_stderr": 0.1,
        "problems": 2,
        "kv_peak_tokens_mean": peak,
        "kv_auc_gb_ktok_mean": 0.01,
        "tokens_mean": 100.0,
        "format_ok": 1.0,
        "answered": 1.0,
        "truncated": 0.0,
    }


def _folder(path: Path, modes: dict[str, tuple[float, float]], samples: list[dict[str, object]]) -> None:
    path.mkdir(parents=True)
    summary = {"modes": {name: _summary(*figures) for name, figures in modes.items()}}
    (path / "summary.json").write_text(json.dumps(summary))
    (path / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))


def _sample(mode: str, problem: str, response: str, correct: bool, peak: int) -> dict[str, object]:
    return {"mode": mode, "id": problem, "response": response, "correct": correct, "kv_peak_tokens": peak}


def test_the_report_compares_backends_without_the_end_of_turn_text_and_heads_with_both_ratios(tmp_path: Path) -> None:
    out = tmp_path / "run"
    modes = {"memento": (1.0, 50.0), "no_eviction": (0.5, 100.0), "restart": (0.5, 80.0), "baseline": (1.0, 80.0)}
    _folder(
        out / "eval-3",
        modes,
        [_sample(m, f"p{i}", "x", True, 60) for m in modes for i in range(2)],
    )
    # transformers keeps the final end-of-turn text and vLLM drops it: the same response; p1 differs
    _folder(
        out / "check-hf",
        {"memento": (1.0, 50.0)},
        [_sample("memento", "p0", "a" + END, True, 50), _sample("memento", "p1", "b" + END, True, 50)],
    )
    _folder(
        out / "check-vllm",
        {"memento": (1.0, 50.0)},
        [_sample("memento", "p0", "a", True, 50), _sample("memento", "p1", "c", False, 50)],
    )
    figures = tmp_path / "figures" / "real_task.json"
    done = subprocess.run(
        [
            sys.executable,
            "examples/real_task_report.py",
            "figures",
            str(out),
            "--budget",
            "55",
            "--middle",
            "3",
            "--output",
            str(figures),
        ],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    written = json.loads(figures.read_text())
    check = written["vllm_check"]
    assert (check["identical_responses"], check["same_verdict"], check["compared"]) == (1, 1, 2)
    # memento's peak 50 is 0.50x no eviction's 100 and 0.62x plain CoT's 80
    assert written["headline"]["figure"].endswith("at 0.50x the peak KV without eviction (0.62x plain CoT's)")
    # within 55 KV tokens every response peaked at 60: none counts
    level = written["levels"][0]
    assert level["modes"]["memento_budget"]["accuracy"] == 0.0 and level["modes"]["memento"]["accuracy"] == 1.0

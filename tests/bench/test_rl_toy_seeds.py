"""bench/rl_toy_seeds.py: gains per seed and across seeds from rl_toy.py's report files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _report(path: Path, seed: int, models: dict[str, list[bool]], learning_rate: float = 1e-4) -> Path:
    path.mkdir(parents=True)
    args = {"seed": seed, "steps": 40, "learning_rate": learning_rate, "output": str(path)}
    report = {"args": args, "models": {name: {"correct_evict": c} for name, c in models.items()}}
    for name in models:
        if name != "sft":  # the training arms' rollout rewards, as rl_toy.py reports them
            report["models"][name] |= {"rollout_reward_first_quarter": 0.5, "rollout_reward_last_quarter": 0.125}
    (path / "report.json").write_text(json.dumps(report))
    return path / "report.json"


def test_gains_are_paired_per_seed_and_summarised_across_seeds(tmp_path: Path) -> None:
    sft = [True, False, False, False]  # 25%
    reports = [
        _report(tmp_path / "s0", 0, {"sft": sft, "evict": [True, True, False, False], "evict-vllm": [True] * 4}),
        _report(tmp_path / "s1-hf", 1, {"sft": sft, "evict": [True, True, True, False]}),
        _report(tmp_path / "s1-vllm", 1, {"sft": sft, "evict-vllm": [False, False, False, False]}),
    ]
    out = tmp_path / "seeds.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "rl_toy_seeds.py"), *map(str, reports), "--write-results", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    # evict: +25%, +50% (mean +37.5%); evict-vllm: +75%, -25% (mean +25%); vllm - hf: +50%, -75%
    tables = json.loads(out.read_text())["tables"]
    assert tables[0]["rows"][0] == ["0", "evict", "50.0%", "+25.0% +- 25.0%", "0.50 -> 0.12"]
    across = {row[0]: row for row in tables[1]["rows"]}
    # gains, mean, sd, s.e. of the mean (sd / sqrt 2), median, range, seeds gaining >= 10 points
    assert across["evict"][2:] == ["+25.0%, +50.0%", "+37.5%", "17.7%", "12.5%", "+37.5%", "+25.0% .. +50.0%", "2 of 2"]
    assert across["evict-vllm"][2:] == [
        "+75.0%, -25.0%",
        "+25.0%",
        "70.7%",
        "50.0%",
        "+25.0%",
        "-25.0% .. +75.0%",
        "1 of 2",
    ]
    # difference of the mean gains, s.e. hypot(12.5, 50)
    assert tables[2]["rows"] == [["-12.5%", "51.5%"]]
    assert "mean gains: -12.5% +- 51.5% (s.e.)" in done.stdout
    assert "same seeds (0, 1): +50.0%, -75.0%; mean -12.5%" in done.stdout


def test_a_model_and_seed_given_twice_is_refused(tmp_path: Path) -> None:
    sft = [True, False]
    a = _report(tmp_path / "a", 3, {"sft": sft, "evict": [True, True]})
    b = _report(tmp_path / "b", 3, {"sft": sft, "evict": [False, True]})
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "rl_toy_seeds.py"), str(a), str(b)], capture_output=True, text=True
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [f"{b}: evict at seed 3 is in two reports"]


def test_a_folder_of_reports_gives_the_readme_row(tmp_path: Path) -> None:
    sft = [True, False, False, False]  # 25%
    folder = tmp_path / "runs"
    folder.mkdir()
    for seed, hf, vllm in ((0, [True, True, True, False], [False] * 4), (1, [True] * 4, [True, True, True, False])):
        for engine, name, correct in (("hf", "evict", hf), ("vllm", "evict-vllm", vllm)):
            report = _report(tmp_path / f"s{seed}-{engine}", seed, {"sft": sft, name: correct})
            report.rename(folder / f"seed{seed}-{engine}.json")
    out = tmp_path / "seeds.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "rl_toy_seeds.py"), str(folder), "--write-results", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    results = json.loads(out.read_text())
    assert len(results["provenance"]) == 4
    assert results["notes"] == ["recipe (every report): learning_rate 0.0001, steps 40"]
    # transformers: +50, +75 (median and mean +62.5); vLLM: -25, +50 (median and mean +12.5)
    assert results["headline"] == {
        "what": "CISPO on evicting rollouts, toy model, 40 steps at lr 0.0001, seeds 0-1, transformers / vLLM rollouts",
        "figure": "median +62.5 / +12.5 pp pass@1 with eviction vs the SFT model (mean +62.5 / +12.5); "
        "2 of 2 / 1 of 2 seeds gain >= 10 pp, 0 / 1 lose points",
    }


def test_reports_of_two_learning_rates_are_refused(tmp_path: Path) -> None:
    sft = [True, False]
    a = _report(tmp_path / "a", 0, {"sft": sft, "evict": [True, True]})
    b = _report(tmp_path / "b", 1, {"sft": sft, "evict": [False, True]}, learning_rate=5e-5)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "rl_toy_seeds.py"), str(a), str(b)], capture_output=True, text=True
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"{b}: learning_rate is 5e-05, {a} has 0.0001: summarise one recipe at a time"
    ]


def test_an_option_one_report_lacks_counts_as_another_recipe(tmp_path: Path) -> None:
    sft = [True, False]
    a = _report(tmp_path / "a", 0, {"sft": sft, "evict": [True, True]})
    b = _report(tmp_path / "b", 1, {"sft": sft, "evict": [False, True]})
    report = json.loads(b.read_text())
    report["args"]["beta"] = 0.01  # an older report format, or another recipe: not summarised together
    b.write_text(json.dumps(report))
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "rl_toy_seeds.py"), str(a), str(b)], capture_output=True, text=True
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [f"{b}: beta is 0.01, {a} has missing: summarise one recipe at a time"]

"""Several runs on one page (`memento eval view RUN_A RUN_B ...`): their names, the check that they can be compared
problem by problem, and their problems merged into one list whose samples carry their run.

Runs must name the same benchmark (the same name, or local files of the same bytes); their problem sets may
differ (another `--limit`): the page shows the union, and a problem a run lacks is a gap in that run's columns.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from memento.eval.report.view_data import ViewError


def run_names(directories: list[Path]) -> list[str]:
    """Each run's name on the page: its folder's name, or the paths as given when two folders share a name."""
    resolved = [directory.resolve() for directory in directories]
    for index, path in enumerate(resolved):
        if path in resolved[:index]:
            raise ViewError(f"{directories[index]}: given twice; give each run once")
    names = [path.name or str(path) for path in resolved]
    return names if len(set(names)) == len(names) else [str(directory) for directory in directories]


def _benchmark_key(run: dict[str, Any]) -> tuple[str, ...]:
    name = run["benchmark"]
    if isinstance(name, str) and Path(name).is_file():
        return ("file", hashlib.sha256(Path(name).read_bytes()).hexdigest())
    return ("name", str(name))


def check_comparable(runs: list[dict[str, Any]]) -> None:
    """Raise `ViewError` (one line, naming both runs) unless every run is on the first run's benchmark."""
    first = runs[0]
    for run in runs[1:]:
        if _benchmark_key(run) != _benchmark_key(first):
            raise ViewError(
                f"{run['run']}: benchmark {run['benchmark']}, but {first['run']} is on {first['benchmark']}; "
                "runs are compared problem by problem, so give runs of one benchmark"
            )


def series(run: str, mode: str, several: bool) -> str:
    """The name of one (run, mode) in the plots and colours: the mode alone on a page of one run."""
    return f"{run} · {mode}" if several else mode


def merge(runs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """The page's data of `runs` (each `view_data.load_run`'s) named `names`: every problem once, in the benchmark's
    order, with the samples of every run (each sample's ``run`` its run's name)."""
    problems: dict[str, dict[str, Any]] = {}
    for run, name in zip(runs, names, strict=True):
        for problem in run["problems"]:
            merged = problems.setdefault(problem["id"], {**problem, "samples": []})
            merged["samples"] += [{**sample, "run": name} for sample in problem["samples"]]
    order = sorted(problems, key=lambda i: (problems[i]["position"] is None, problems[i]["position"] or 0, i))
    modes = list(dict.fromkeys(mode for run in runs for mode in run["modes"]))
    return {
        "runs": names,
        "modes": modes,
        "run_modes": {name: run["modes"] for run, name in zip(runs, names, strict=True)},
        "references": {name: run["reference"] for run, name in zip(runs, names, strict=True)},
        "reference": runs[0]["reference"],
        "approximate_curves": any(run["approximate_curves"] for run in runs),
        "problems": [problems[i] for i in order],
    }

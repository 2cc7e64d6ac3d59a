"""`bench/rl_toy.py` over several seeds: the gain of each arm and rollout engine, per seed and across seeds.

Each `rl_toy.py` run writes a ``report.json`` (one seed; one or more arms and engines). This reads any number
of them and prints, for every trained model (``evict``: transformers rollouts, ``evict-vllm``: vLLM rollouts),
the paired gain with eviction over the shipped SFT model per seed, then the mean gain across seeds with the
standard deviation across seeds (the spread RL's randomness gives), the standard error of that mean, the median,
the range and how many seeds gain at least THRESHOLD; where both engines ran, the difference of their mean gains
with its standard error (the seeds as independent runs: one seed number does not give both engines the same
rollouts, their samplers draw differently), and the per-seed differences. The reports must share one recipe
(every rl_toy.py option but the seed, engine, arms, evaluation modes, threads and output): mixing, say, two
learning rates is refused, naming the option and both files.

    bench/rl_toy.py --arms evict --rollouts hf --eval-modes evict --seed 2 --output runs/rl_toy/s2-hf
    bench/rl_toy.py --arms evict --rollouts vllm --eval-modes evict --seed 2 --output runs/rl_toy/s2-vllm
    .venv/bin/python bench/rl_toy_seeds.py runs/rl_toy/*/report.json [--mode evict] [--write-results]
    .venv/bin/python bench/rl_toy_seeds.py docs/figures/rl_toy_runs --write-results   # the kept reports
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

from results import add_results_flag, table, write_results
from rl_toy import accuracy, paired_gain

Reports = list[tuple[Path, dict[str, Any]]]
"""rl_toy.py report files, each read once: (path, named in error lines; its parsed JSON), as given."""


def rollout_rewards(reports: Reports) -> dict[tuple[str, int], str]:
    """(model, seed) -> the mean rollout reward of the run's first and last quarter of steps, as "a -> b".

    A run whose reward falls during training (the policy collapsing) shows here before any evaluation.
    """
    found = {}
    for _, report in reports:
        for name, result in report["models"].items():
            first, last = result.get("rollout_reward_first_quarter"), result.get("rollout_reward_last_quarter")
            if first is not None and last is not None:
                found[(name, int(report["args"]["seed"]))] = f"{first:.2f} -> {last:.2f}"
    return found


MISSING = "missing"
"""How `recipe` names an option a report does not have."""
PER_RUN = {"output", "arms", "rollouts", "eval_modes", "seed", "threads", "write_results"}
"""rl_toy.py options that may differ between the reports of one summary; every other option is the recipe."""


def recipe(reports: Reports) -> dict[str, Any]:
    """The training and evaluation options the reports share (learning rate, steps, ...).

    Reports of different recipes are refused (an option one report lacks counts as different): a summary
    across seeds is of one recipe.
    """
    options = [(path, {k: v for k, v in report["args"].items() if k not in PER_RUN}) for path, report in reports]
    (first, shared), *others = options
    for path, own in others:
        for key in sorted(shared.keys() | own.keys()):
            mine, theirs = own.get(key, MISSING), shared.get(key, MISSING)
            if mine != theirs:
                raise SystemExit(f"{path}: {key} is {mine}, {first} has {theirs}: summarise one recipe at a time")
    return shared


def gains(reports: Reports, mode: str) -> dict[str, dict[int, tuple[float, float, float]]]:
    """model name -> seed -> (accuracy, paired gain vs SFT, its standard error), decoded in `mode`."""
    found: dict[str, dict[int, tuple[float, float, float]]] = {}
    for path, report in reports:
        seed = int(report["args"]["seed"])
        models = report["models"]
        key = f"correct_{mode}"
        if key not in models.get("sft", {}):
            raise SystemExit(f"{path}: no '{key}' for the SFT model (run rl_toy.py with --eval-modes {mode})")
        for name, result in models.items():
            if name == "sft" or key not in result:
                continue
            if seed in found.get(name, {}):
                raise SystemExit(f"{path}: {name} at seed {seed} is in two reports")
            gain, error = paired_gain(models["sft"][key], result[key])
            found.setdefault(name, {})[seed] = (accuracy(result[key])[0], gain, error)
    return found


THRESHOLD = 0.10
"""The gain the issue asks of the toy run (10 points)."""


def gaining(values: list[float]) -> str:
    """How many gains reach THRESHOLD, as "k of n"."""
    return f"{sum(v >= THRESHOLD - 1e-9 for v in values)} of {len(values)}"


def engine_gains(found: dict[str, dict[int, tuple[float, float, float]]], name: str) -> list[float]:
    """One model's gain per seed."""
    return [gain for _, gain, _ in found[name].values()]


def mean_and_error(values: list[float]) -> tuple[float, float | None]:
    """Mean across seeds and its standard error (sd / sqrt(n); None for one seed)."""
    if len(values) < 2:
        return statistics.fmean(values), None
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def summary_rows(found: dict[str, dict[int, tuple[float, float, float]]]) -> list[list[str]]:
    """Per model: seeds, gain per seed, mean gain, sd across seeds, its s.e., median, range, seeds >= THRESHOLD."""
    rows = []
    for name, by_seed in sorted(found.items()):
        values = [by_seed[seed][1] for seed in sorted(by_seed)]
        mean, error = mean_and_error(values)
        rows.append(
            [
                name,
                ", ".join(str(seed) for seed in sorted(by_seed)),
                ", ".join(f"{value:+.1%}" for value in values),
                f"{mean:+.1%}",
                f"{statistics.stdev(values):.1%}" if error is not None else "-",
                f"{error:.1%}" if error is not None else "-",
                f"{statistics.median(values):+.1%}",
                f"{min(values):+.1%} .. {max(values):+.1%}",
                gaining(values),
            ]
        )
    return rows


def engine_difference(found: dict[str, dict[int, tuple[float, float, float]]]) -> tuple[float, float] | None:
    """vLLM minus transformers rollouts: difference of the mean gains and its s.e. (independent seeds)."""
    if len(found.get("evict", {})) < 2 or len(found.get("evict-vllm", {})) < 2:
        return None
    hf = mean_and_error(engine_gains(found, "evict"))
    vllm = mean_and_error(engine_gains(found, "evict-vllm"))
    return vllm[0] - hf[0], math.hypot(hf[1], vllm[1])


def headline(found: dict[str, dict[int, tuple[float, float, float]]], options: dict[str, Any]) -> dict[str, str] | None:
    """The README row, where both engines ran: median and mean gain, and seeds gaining >= THRESHOLD.

    `options` is the reports' shared recipe (its steps and learning rate are named).
    """
    if "evict" not in found or "evict-vllm" not in found:
        return None
    engines = [engine_gains(found, name) for name in ("evict", "evict-vllm")]
    seeds = sorted(set(found["evict"]) | set(found["evict-vllm"]))
    median, mean = ([f"{100 * how(v):+.1f}" for v in engines] for how in (statistics.median, statistics.fmean))
    over = [gaining(v) for v in engines]
    lose = [str(sum(g < 0 for g in v)) for v in engines]
    return {
        "what": f"CISPO on evicting rollouts, toy model, {options.get('steps', '?')} steps at lr "
        f"{options.get('learning_rate', '?')}, "
        f"seeds {seeds[0]}-{seeds[-1]}, "
        "transformers / vLLM rollouts",
        "figure": f"median {median[0]} / {median[1]} pp pass@1 with eviction vs the SFT model (mean {mean[0]} / "
        f"{mean[1]}); {over[0]} / {over[1]} seeds gain >= {100 * THRESHOLD:.0f} pp, {lose[0]} / {lose[1]} lose points",
    }


def report_files(paths: list[Path]) -> list[Path]:
    """The report files given, a folder standing for the .json files in it."""
    found = []
    for path in paths:
        found += sorted(path.glob("*.json")) if path.is_dir() else [path]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path, help="rl_toy.py report.json files, or folders of them")
    parser.add_argument("--mode", default="evict", help="decoding mode of the gains (evict or no_evict)")
    add_results_flag(parser, "rl_toy_seeds")
    args = parser.parse_args()
    reports = [(path, json.loads(path.read_text())) for path in report_files(args.reports)]
    options = recipe(reports)
    found = gains(reports, args.mode)
    rewards = rollout_rewards(reports)
    per_seed = [
        [str(seed), name, f"{acc:.1%}", f"{gain:+.1%} +- {error:.1%}", rewards.get((name, seed), "-")]
        for name, by_seed in sorted(found.items())
        for seed, (acc, gain, error) in sorted(by_seed.items())
    ]
    recipe_line = "recipe (every report): " + ", ".join(f"{key} {value}" for key, value in sorted(options.items()))
    print(recipe_line)
    print(f"gain with {args.mode} decoding over the shipped SFT model (paired, same held-out problems)")
    print(f"{'seed':<6}{'model':<14}{'accuracy':>10}{'gain +- s.e.':>22}  rollout reward, first -> last quarter")
    for row in per_seed:
        print(f"{row[0]:<6}{row[1]:<14}{row[2]:>10}{row[3]:>22}  {row[4]}")
    summary = summary_rows(found)
    print(f"\n{'model':<14}{'mean gain':>10}{'sd':>8}{'s.e.':>8}{'median':>9}  {'range':<18}seeds >= +{THRESHOLD:.0%}")
    for name, _, _, mean, spread, error, median, span, over in summary:
        print(f"{name:<14}{mean:>10}{spread:>8}{error:>8}{median:>9}  {span:<18}{over}")
    difference = engine_difference(found)
    if difference is not None:
        print(f"\nvLLM - transformers rollouts, mean gains: {difference[0]:+.1%} +- {difference[1]:.1%} (s.e.)")
    paired = []
    if "evict" in found and "evict-vllm" in found:
        shared = sorted(set(found["evict"]) & set(found["evict-vllm"]))
        differences = [found["evict-vllm"][seed][1] - found["evict"][seed][1] for seed in shared]
        if differences:
            spread = f"{statistics.stdev(differences):.1%}" if len(differences) > 1 else "-"
            print(
                f"\nvLLM - transformers rollouts, same seeds ({', '.join(map(str, shared))}): "
                + ", ".join(f"{d:+.1%}" for d in differences)
                + f"; mean {statistics.fmean(differences):+.1%}, sd {spread}"
            )
            paired = [[str(seed), f"{d:+.1%}"] for seed, d in zip(shared, differences, strict=True)]
    tables = [
        table(
            "gain per seed",
            ["seed", "model", "accuracy", "gain vs SFT +- s.e.", "rollout reward, first -> last quarter"],
            per_seed,
        ),
        table(
            "across seeds",
            [
                "model",
                "seeds",
                "gains",
                "mean gain",
                "sd across seeds",
                "s.e. of the mean",
                "median",
                "range",
                f"seeds gaining >= {THRESHOLD:.0%}",
            ],
            summary,
        ),
    ]
    if difference is not None:
        tables.append(
            table(
                "vLLM minus transformers rollouts, mean gains (independent seeds)",
                ["difference", "s.e."],
                [[f"{difference[0]:+.1%}", f"{difference[1]:.1%}"]],
            )
        )
    if paired:
        tables.append(table("vLLM minus transformers rollouts, same seed", ["seed", "gain difference"], paired))
    write_results(
        args.write_results,
        "rl_toy_seeds",
        provenance=[str(path) for path, _ in reports],
        tables=tables,
        headline=headline(found, options) if args.mode == "evict" else None,
        notes=[recipe_line],
    )


if __name__ == "__main__":
    main()

"""`grade_records` (`memento eval grade`): responses generated elsewhere, graded and replayed for KV
exactly as a run's own samples, into the records a run writes (`evaluate.grade_responses` summarizes them).

The file is JSONL: ``id`` (the benchmark's problem id) and ``response`` per line; optional ``mode``
(default ``memento``), ``sample`` (default: the order of that problem's lines), ``finish_reason``,
``seconds`` and ``seed``. A `memento eval` run's samples.jsonl is such a file. A record whose context
was measured at the endpoint (``"kv_from": "endpoint"``: the prompted backend's) keeps its measured
figures (`MEASURED_KEYS`): its blocks were never in one context, so there is nothing to replay.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memento import textfiles
from memento.config import default_mask_delimiters
from memento.eval.benchmarks.problems import Benchmark
from memento.eval.benchmarks.prompts import build_prompt, load_template
from memento.eval.benchmarks.sources import load_benchmark
from memento.eval.run.backends.base import ENDPOINT, MEASURED_KEYS, Sample
from memento.eval.run.modes import BASELINE, BUILTIN_MODES, PROMPTED_MODES, Mode, builtin_mode, extra_mode
from memento.eval.run.options import GradeOptions
from memento.eval.run.records import WorkItem, build_records
from memento.eval.run.replay import KVReplay, resolve_geometry
from memento.kv import KVGeometry

DEFAULT_MODE = "memento"
DEFAULT_GEOMETRY = "qwen3-8b"
ENDPOINT_REQUIRED = ("prompt_tokens", "tokens", "kv_peak_tokens", "calls")
"""Fields a record with ``"kv_from": "endpoint"`` must carry (the rest of `MEASURED_KEYS` are optional)."""


class ResponsesFormatError(ValueError):
    """A responses file line that cannot be graded; the message names the file and line."""


def read_responses(path: str | Path, known_ids: set[str]) -> list[dict[str, Any]]:
    """Rows with ``mode``, ``id``, ``sample``, ``response`` (and optional fields), validated."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such responses file")
    rows: list[dict[str, Any]] = []
    counters: dict[tuple[str, str], int] = defaultdict(int)
    seen: dict[tuple[str, str, int], int] = {}
    for number, row in textfiles.read_jsonl(path, error=ResponsesFormatError):
        where = f"{path}:{number}"
        if not isinstance(row, dict):
            raise ResponsesFormatError(f"{where}: expected an object with 'id' and 'response'")
        for name in ("id", "response"):
            if name not in row:
                raise ResponsesFormatError(f"{where}: missing field {name!r}")
        if not isinstance(row["response"], str):
            raise ResponsesFormatError(f"{where}: field 'response' should be text")
        if row.get("kv_from") == ENDPOINT:
            for name in ENDPOINT_REQUIRED:
                if isinstance(row.get(name), bool) or not isinstance(row.get(name), int):
                    raise ResponsesFormatError(f"{where}: an endpoint-measured record needs an integer {name!r}")
        problem_id, mode = str(row["id"]), str(row.get("mode") or DEFAULT_MODE)
        if problem_id not in known_ids:
            raise ResponsesFormatError(f"{where}: problem id {problem_id!r} is not in the benchmark")
        sample = row.get("sample", counters[(mode, problem_id)])
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
            raise ResponsesFormatError(f"{where}: field 'sample' should be an integer >= 0, got {sample!r}")
        counters[(mode, problem_id)] = max(counters[(mode, problem_id)], sample + 1)
        key = (mode, problem_id, sample)
        if key in seen:
            raise ResponsesFormatError(
                f"{where}: mode {mode!r}, problem {problem_id!r}, sample {sample} repeats line {seen[key]}"
            )
        seen[key] = number
        rows.append({**row, "id": problem_id, "mode": mode, "sample": sample})
    if not rows:
        raise ResponsesFormatError(f"{path}: no responses in the file")
    return rows


def _mask_delimiters(options: GradeOptions) -> bool:
    if options.mask_delimiters is not None:
        return options.mask_delimiters
    if options.model_config is not None:
        config = Path(options.model_config)
        config = config if config.is_file() else config / "config.json"
        return default_mask_delimiters(str(json.loads(config.read_text(encoding="utf-8")).get("model_type", "")))
    return (options.geometry or DEFAULT_GEOMETRY).startswith("phi")


def _mode(name: str, options: GradeOptions, mask_delimiters: bool) -> Mode:
    if name in BUILTIN_MODES:
        return builtin_mode(name, mask_delimiters)
    if name == BASELINE or name in PROMPTED_MODES:
        return Mode(name, None)
    if options.config is not None:
        return Mode(name, extra_mode(options.config, mask_delimiters).config)
    return Mode(name, builtin_mode(DEFAULT_MODE, mask_delimiters).config)


def _measured(row: dict[str, Any]) -> dict[str, Any] | None:
    """The endpoint-measured figures of a prompted-backend record, None for any other row."""
    if row.get("kv_from") != ENDPOINT:
        return None
    return {key: row[key] for key in MEASURED_KEYS if key in row}


@dataclass
class GradedResponses:
    """The records of a responses file by mode, and what their summary needs besides."""

    benchmark: Benchmark
    records_by_mode: dict[str, list[dict[str, Any]]]
    samples_per_problem: int
    kv_geometry: KVGeometry
    approximate_tokens: bool
    mode_settings: dict[str, dict[str, Any]]


def grade_records(options: GradeOptions) -> GradedResponses:
    """The responses file of `options`, graded and replayed into records."""
    benchmark = load_benchmark(
        options.benchmark, options.limit, choice_seed=options.choice_seed, use_hub=not options.offline
    )
    template = load_template(options.prompt_template) if options.prompt_template else None
    problems = benchmark.by_id()
    rows = read_responses(options.responses, set(problems))
    geometry = resolve_geometry(
        model_config=options.model_config, preset=None if options.model_config else options.geometry or DEFAULT_GEOMETRY
    )
    replay = KVReplay.load(options.tokenizer, geometry)
    mask_delimiters = _mask_delimiters(options)
    by_mode: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_mode[row["mode"]].append(row)
    records_by_mode: dict[str, list[dict[str, Any]]] = {}
    mode_settings: dict[str, dict[str, Any]] = {}
    for name, mode_rows in by_mode.items():
        mode = _mode(name, options, mask_delimiters)
        mode_settings[name] = mode.describe()
        items = [
            WorkItem(problems[row["id"]], row["sample"], row.get("seed"), build_prompt(problems[row["id"]], template))
            for row in mode_rows
        ]
        samples = [
            Sample(
                text=row["response"],
                token_ids=None,
                finish_reason=row.get("finish_reason"),
                seconds=float(row["seconds"]) if isinstance(row.get("seconds"), int | float) else 0.0,
                measured=_measured(row),
            )
            for row in mode_rows
        ]
        records_by_mode[name] = build_records(mode, items, samples, replay, workers=options.grade_workers)
    return GradedResponses(
        benchmark,
        records_by_mode,
        samples_per_problem=max(row["sample"] for row in rows) + 1,
        kv_geometry=geometry,
        approximate_tokens=any(
            record.get("usage_approximate", replay.approximate)
            for records in records_by_mode.values()
            for record in records
        ),
        mode_settings=mode_settings,
    )

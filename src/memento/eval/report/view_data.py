"""A run directory read back for `memento eval view`: what the page shows, as plain JSON-ready data.

Reads only (a run still writing is left alone): manifest.json, samples.jsonl (whole lines),
summary.json when the run finished (else the summary of the samples so far, by the same
`summarize`), invocations.jsonl (commands and versions). Problems come from the benchmark the
manifest names, offline; without it the page shows ids only. Each replayed sample gets its KV
sawtooth from the same replay as the run (the model's tokenizer when it is a local checkpoint, else
the approximate counter); endpoint-measured samples (prompted backend) have no per-token curve.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memento import textfiles
from memento.config import MementoConfig
from memento.eval.benchmarks.problems import Benchmark, Problem
from memento.eval.benchmarks.prompts import format_choices
from memento.eval.benchmarks.sources import load_benchmark
from memento.eval.report.outputs import ACCURACY_PLOT, CDF_PLOT, SUMMARY_FILE
from memento.eval.report.summary import REFERENCE_MODES, summarize
from memento.eval.run.backends.base import ENDPOINT
from memento.eval.run.replay import KVReplay
from memento.eval.run.schema import check_invocation, check_manifest_file, check_summarizable, check_summary
from memento.eval.run.store import INVOCATIONS_FILE, MANIFEST_FILE, SAMPLES_FILE, StoreError, read_samples
from memento.folder_lock import LOCK_FILE
from memento.format import BLOCK_END, BLOCK_START, SUMMARY_END, SUMMARY_START, split_on_markers
from memento.json_shapes import ShapeError
from memento.kv import KVGeometry

CURVE_GEOMETRY = "qwen3-8b"
"""Geometry of the page's curves: they plot tokens, which no geometry changes."""


class ViewError(ValueError):
    """A directory that holds no run; the message names it and what was expected."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _read_checked(path: Path, check: Callable[[Any, str], Any]) -> Any:
    """The JSON of `path` (None when there is none) in the shape `check` (of `run.schema`) wants."""
    if not path.exists():
        return None
    return check(textfiles.read_json(path, error=ViewError), str(path))


def _read_invocations(path: Path) -> list[dict[str, Any]]:
    """Every whole line of invocations.jsonl (a last line without its newline is still being written), checked."""
    if not path.exists():
        return []
    text = textfiles.read_text(path, error=ViewError)
    invocations = []
    for number, line in enumerate(text[: text.rfind("\n") + 1].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as fault:
            raise ViewError(f"{path}:{number}: invalid JSON at column {fault.colno}: {fault.msg}") from None
        invocations.append(check_invocation(value, f"{path}:{number}"))
    return invocations


def run_files(directory: Path) -> list[Path]:
    """The files of the run in `directory` that a page must never replace: what `memento eval` and `eval grade`
    write there (present or not yet) and the local benchmark file its manifest names."""
    names = (SAMPLES_FILE, MANIFEST_FILE, SUMMARY_FILE, INVOCATIONS_FILE, ACCURACY_PLOT, CDF_PLOT, LOCK_FILE)
    files = [directory / name for name in names]
    manifest = _read_json(directory / MANIFEST_FILE)
    benchmark = manifest.get("benchmark") if isinstance(manifest, dict) else None
    if isinstance(benchmark, str) and Path(benchmark).is_file():
        files.append(Path(benchmark))
    return files


def segments(text: str) -> list[dict[str, Any]]:
    """The response cut for display: ``{"kind": "block", "text", "memento"}`` per block (memento None
    when it has none) and ``{"kind": "text", "text"}`` for everything else, markers dropped."""
    parts: list[dict[str, Any]] = []
    state = "text"
    for piece, is_marker in split_on_markers(text):
        if is_marker and piece == BLOCK_START:
            parts.append({"kind": "block", "text": "", "memento": None})
            state = "block"
        elif is_marker and piece == SUMMARY_START:
            if not parts or parts[-1]["kind"] != "block" or parts[-1]["memento"] is not None:
                parts.append({"kind": "block", "text": "", "memento": None})
            parts[-1]["memento"] = ""
            state = "memento"
        elif is_marker and piece in (BLOCK_END, SUMMARY_END):
            state = "between"
        elif is_marker:
            continue
        elif state == "block":
            parts[-1]["text"] += piece
        elif state == "memento":
            parts[-1]["memento"] += piece
        elif piece.strip():
            if parts and parts[-1]["kind"] == "text":
                parts[-1]["text"] += piece
            else:
                parts.append({"kind": "text", "text": piece})
    return parts


def curve(report_occupancy: list[int], prompt_tokens: int) -> list[list[int]]:
    """The sawtooth's corners over generated positions: [position, cache tokens] at the start, before
    and after each eviction (position of the step that evicted), and at the end."""
    occupancy = report_occupancy[prompt_tokens:]
    if not occupancy:
        return []
    points = [[0, occupancy[0]]]
    for step in range(1, len(occupancy)):
        before = occupancy[step - 1] + 1
        if occupancy[step] != before:
            points += [[step, before], [step, occupancy[step]]]
    points.append([len(occupancy) - 1, occupancy[-1]])
    return points


def _replay_for(manifest: dict[str, Any]) -> KVReplay:
    model = manifest.get("tokenizer") or manifest.get("model")
    local = model is not None and (Path(model) / "tokenizer_config.json").is_file()
    return KVReplay.load(model if local else None, KVGeometry.preset(CURVE_GEOMETRY))


def _mode_config(manifest: dict[str, Any], summary: dict[str, Any] | None, mode: str) -> MementoConfig | None:
    settings = manifest.get("modes", {}).get(mode) or (summary or {}).get("mode_settings", {}).get(mode)
    if settings is None:
        return None
    config = settings.get("config")
    return MementoConfig.disabled() if config is None else MementoConfig.from_dict(config)


def _benchmark(manifest: dict[str, Any], summary: dict[str, Any] | None) -> tuple[Benchmark | None, str | None]:
    name = manifest.get("benchmark") or (summary or {}).get("benchmark")
    if name is None:
        return None, "the run names no benchmark: problems shown by id only"
    try:
        kwargs = {"choice_seed": manifest["choice_seed"]} if "choice_seed" in manifest else {}
        return load_benchmark(name, None, use_hub=False, **kwargs), None
    except Exception as error:  # any failure to load leaves a page of ids, never no page
        return None, f"benchmark {name} not available offline ({error}): problems shown by id only"


def _problem(problem: Problem | None, problem_id: str) -> dict[str, Any]:
    if problem is None:
        return {"id": problem_id, "text": "", "gold": None, "subject": "", "kind": ""}
    text = problem.problem
    if problem.choices:
        text += "\n" + format_choices(problem.choices)
    subject = str(problem.metadata.get("subject") or problem.metadata.get("type") or problem.kind)
    return {"id": problem.id, "text": text, "gold": problem.answer, "subject": subject, "kind": problem.kind}


def _sample(record: dict[str, Any], replay: KVReplay, config: MementoConfig | None) -> dict[str, Any]:
    measured = record.get("kv_from") == ENDPOINT
    sample = {
        "mode": record["mode"],
        "sample": int(record["sample"]),
        "verdict": "correct" if record.get("correct") else "wrong",
        "status": record.get("status"),
        "answer": record.get("answer"),
        "finish_reason": record.get("finish_reason"),
        "tokens": record.get("tokens"),
        "prompt_tokens": record.get("prompt_tokens"),
        "peak": record.get("kv_peak_tokens"),
        "blocks": record.get("blocks"),
        "mementos": record.get("mementos"),
        "well_formed": record.get("well_formed"),
        "segments": segments(str(record.get("response", ""))),
        "curve": None,
    }
    if measured:
        sample["endpoint"] = {key: record.get(key) for key in ("rounds", "calls", "fallbacks", "retries")}
    elif config is not None and record.get("prompt_tokens") is not None:
        prompt = int(record["prompt_tokens"])
        special = {value for value in dataclasses.astuple(replay.special_ids) if isinstance(value, int)}
        filler = next(token for token in range(len(special) + 1) if token not in special)
        ids = replay.response_ids(str(record.get("response", "")))
        report = replay.replay([filler] * prompt, ids, config)
        sample["curve"] = curve(report.occupancy, prompt)
    return sample


def load_run(directory: str | Path) -> dict[str, Any]:
    """The page's data of the run in `directory`; raises `ViewError` when it holds no run."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ViewError(f"{directory}: not a directory; give the output directory of memento eval (or eval grade)")
    try:
        records = read_samples(directory)
        manifest = _read_checked(directory / MANIFEST_FILE, check_manifest_file) or {}
        summary = written = _read_checked(directory / SUMMARY_FILE, check_summary)
        invocations = _read_invocations(directory / INVOCATIONS_FILE)
    except (StoreError, ShapeError) as error:
        raise ViewError(str(error)) from None
    if not records:
        raise ViewError(f"{directory}: no samples in {SAMPLES_FILE}; give the output directory of memento eval")
    benchmark, note = _benchmark(manifest, summary)
    problems = benchmark.by_id() if benchmark is not None else {}
    modes = list(dict.fromkeys([*manifest.get("modes", {}), *(summary or {}).get("modes", {})]))
    modes = [mode for mode in modes if any(key[0] == mode for key in records)]
    modes += [mode for mode in dict.fromkeys(key[0] for key in records) if mode not in modes]
    finished = summary is not None and sum(m.get("samples", 0) for m in summary.get("modes", {}).values()) == len(
        records
    )
    if not finished and benchmark is not None:
        by_mode: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for key, record in records.items():
            if key[1] in problems:
                where = f"{directory / SAMPLES_FILE}: sample {key[2]} of {key[1]} in mode {key[0]}"
                try:
                    by_mode[key[0]].append(check_summarizable(record, where))
                except ShapeError as error:
                    raise ViewError(str(error)) from None
        summary = summarize(by_mode, benchmark, samples_per_problem=max(k[2] for k in records) + 1)
    replay = _replay_for(manifest)
    configs = {mode: _mode_config(manifest, written, mode) for mode in modes}
    order = {problem_id: index for index, problem_id in enumerate(problems)}
    ids = sorted({key[1] for key in records}, key=lambda i: (order.get(i, len(order)), i))
    samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key in sorted(records, key=lambda k: (k[1], modes.index(k[0]), k[2])):
        samples[key[1]].append(_sample(records[key], replay, configs[key[0]]))
    return {
        "run": str(directory),
        "benchmark": manifest.get("benchmark") or (summary or {}).get("benchmark"),
        "backend": manifest.get("backend") or (summary or {}).get("backend"),
        "graded_from": manifest.get("graded_from") or (summary or {}).get("responses"),
        "model": manifest.get("model") or (summary or {}).get("model"),
        "finished": finished,
        "notes": [n for n in (note,) if n] + ([] if finished else [f"in progress: {len(records)} samples so far"]),
        "approximate_curves": replay.approximate,
        "modes": modes,
        "reference": next((mode for mode in REFERENCE_MODES if mode in modes), None),
        "summary": summary,
        "invocations": invocations,
        "problems": [{**_problem(problems.get(i), i), "position": order.get(i), "samples": samples[i]} for i in ids],
    }

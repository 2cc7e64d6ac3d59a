"""One finished sample -> one JSON record: graded, its format checked, its KV replayed.

The run and `memento eval grade` both build records here, so a responses file graded later
gives the records the run wrote (up to what the backend alone knew: token ids and timing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memento.eval.benchmarks.problems import Problem
from memento.eval.grading.graders import grade_many
from memento.eval.grading.metrics import well_formed
from memento.eval.run.backends.base import ENDPOINT, MEASURED_KEYS, Sample
from memento.eval.run.modes import Mode
from memento.eval.run.replay import KVReplay
from memento.format import BLOCK_END, SUMMARY_END


@dataclass(frozen=True)
class WorkItem:
    """Sample `sample` of `problem`, asked as `prompt` (the user turn) with `seed`."""

    problem: Problem
    sample: int
    seed: int | None
    prompt: str


def build_records(
    mode: Mode,
    items: Sequence[WorkItem],
    samples: Sequence[Sample],
    replay: KVReplay | None,
    *,
    workers: int | None = None,
) -> list[dict[str, Any]]:
    """Grade `samples` (in parallel; code in sandboxes) and replay their KV under the mode's rule.

    A sample with `measured` figures (the prompted backend's) keeps them instead: its record says
    ``"kv_from": "endpoint"``, its peak KV bytes are the peak tokens times the replay's geometry
    (None without a replay), and its KV AUC is None (the endpoint reports no per-token growth).
    """
    if len(items) != len(samples):
        raise ValueError(f"{len(items)} work items but {len(samples)} samples")
    if replay is None and any(sample.measured is None for sample in samples):
        raise ValueError("samples without measured figures need a KV replay")
    grades = grade_many(
        [(item.problem, sample.text) for item, sample in zip(items, samples, strict=True)], workers=workers
    )
    records = []
    for item, sample, verdict in zip(items, samples, grades, strict=True):
        record: dict[str, Any] = {
            "mode": mode.name,
            "id": item.problem.id,
            "sample": item.sample,
            "seed": item.seed,
            "response": sample.text,
            "finish_reason": sample.finish_reason,
            "correct": verdict.correct,
            "answer": verdict.answer,
            "status": verdict.status,
            "well_formed": well_formed(sample.text),
            "blocks": sample.text.count(BLOCK_END),
            "mementos": sample.text.count(SUMMARY_END),
            "seconds": sample.seconds,
        }
        if sample.measured is not None:
            record.update(_measured_figures(sample.measured, replay))
        else:
            assert replay is not None
            record.update(_replayed_figures(mode, item, sample, replay))
        if sample.cache_peak_tokens is not None:
            record["cache_peak_tokens"] = sample.cache_peak_tokens
        records.append(record)
    return records


def _replayed_figures(mode: Mode, item: WorkItem, sample: Sample, replay: KVReplay) -> dict[str, Any]:
    prompt_ids = sample.prompt_token_ids if sample.prompt_token_ids is not None else replay.prompt_ids(item.prompt)
    response_ids = sample.token_ids if sample.token_ids is not None else replay.response_ids(sample.text)
    kv = replay.measure(prompt_ids, response_ids, mode.replay_config)
    return {
        "prompt_tokens": len(prompt_ids),
        "tokens": len(response_ids),
        "kv_peak_tokens": kv.peak_tokens,
        "kv_peak_bytes": kv.peak_bytes,
        "kv_auc_gb_ktok": kv.auc_gb_ktok,
    }


def _measured_figures(measured: dict[str, Any], replay: KVReplay | None) -> dict[str, Any]:
    unknown = sorted(set(measured) - set(MEASURED_KEYS))
    if unknown:
        raise ValueError(f"measured figures {unknown} are not record fields a backend measures")
    figures = dict(measured)
    peak = int(figures["kv_peak_tokens"])
    figures["kv_peak_bytes"] = None if replay is None else peak * replay.geometry.bytes_per_token
    figures["kv_auc_gb_ktok"] = None
    figures["kv_from"] = ENDPOINT
    return figures

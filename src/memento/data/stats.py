"""What a built data set looks like: compression against the paper's, the judge's scores, refinement, outliers.

Compression is always memento / block (`kv.memento_to_block_ratio`), in characters (the paper's
per-block medians: math 0.16, code 0.18, science 0.23) and in tokens (over all blocks, the inverse
of OpenMementos' ~6x; ~194 tokens a memento for ~1,150 a block). A memento longer than its block
compresses nothing: its record is flagged. `unrecorded_failures`: the traces that failed and have no record.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memento.data.build import FAILURES, RECORDS
from memento.format import read_jsonl
from memento.kv import memento_to_block_ratio
from memento.record_ids import id_key

PAPER_CHARS_MEDIAN = {"math": 0.16, "code": 0.18, "science": 0.23}
"""The paper's median memento/block character ratio per domain."""
PAPER_TOKENS_PER_BLOCK, PAPER_TOKENS_PER_MEMENTO = 1150, 194
"""OpenMementos' averages."""


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(int(q * len(ordered)), len(ordered) - 1)]  # noqa: E731
    return {"p10": pick(0.1), "p50": statistics.median(ordered), "p90": pick(0.9)}


def read_records(directory: str | Path) -> list[dict[str, Any]]:
    """The records of a `memento data build` folder; FileNotFoundError / ValueError with one line."""
    path = Path(directory) / RECORDS
    if not path.exists():
        raise FileNotFoundError(f"no {RECORDS} in {directory}")
    records = [record for _, record in read_jsonl(path)]
    if not records:
        raise ValueError(f"{path} holds no records")
    return records


def unrecorded_failures(directory: str | Path) -> dict[str, str]:
    """Task id (as written in failures.jsonl) -> last reason, for the traces of a build folder that failed and
    have no record; read only (a torn last line is left out)."""
    directory = Path(directory)
    recorded = set()
    if (directory / RECORDS).exists():
        recorded = {id_key(line["task_id"]) for _, line in _whole_lines(directory / RECORDS)}
    failed: dict[str, str] = {}
    if (directory / FAILURES).exists():
        for _, line in _whole_lines(directory / FAILURES):
            if id_key(line["task_id"]) not in recorded:
                failed[str(line["task_id"])] = str(line.get("reason", ""))
    return failed


def _whole_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every line that is an object with a task_id (others are left to the readers
    that check them, e.g. `data export`), a torn last line left out."""
    text = path.read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text[: text.rfind("\n") + 1].splitlines(), start=1):
        try:
            value = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and "task_id" in value:
            yield number, value


def _judge(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    scores = [float(s) for r in records for s in (r.get("judge_scores") or [])]
    if not scores:
        return None
    histogram = Counter(int(s) for s in scores)
    return {
        "count": len(scores),
        "mean": statistics.mean(scores),
        "min": min(scores),
        **_percentiles(scores),
        "histogram": {str(score): histogram[score] for score in sorted(histogram)},
    }


def dataset_stats(directory: str | Path) -> dict[str, Any]:
    """Blocks, tokens, compression (chars per block and per domain, tokens over all), judge scores,
    rewritten mementos, and the records whose mementos are longer than their blocks."""
    records = read_records(directory)
    block_tokens = [t for r in records for t in r["block_tokens"]]
    memento_tokens = [t for r in records for t in r["memento_tokens"]]
    chars_by_domain: dict[str, list[float]] = {}
    tokens_by_domain: dict[str, list[float]] = {}
    longer: list[dict[str, Any]] = []
    for r in records:
        domain = str(r.get("domain"))
        for block, memento in zip(r["blocks"], r["mementos"], strict=True):
            ratio = memento_to_block_ratio(len(memento), len(block))
            if ratio is not None:
                chars_by_domain.setdefault(domain, []).append(ratio)
        for block, memento in zip(r["block_tokens"], r["memento_tokens"], strict=True):
            ratio = memento_to_block_ratio(memento, block)
            if ratio is not None:
                tokens_by_domain.setdefault(domain, []).append(ratio)
        over = [i for i, (b, m) in enumerate(zip(r["blocks"], r["mementos"], strict=True)) if len(m) > len(b)]
        if over:
            longer.append({"task_id": r["task_id"], "blocks": over})
    chars = [ratio for values in chars_by_domain.values() for ratio in values]
    tokens = [ratio for values in tokens_by_domain.values() for ratio in values]
    judge = _judge(records)
    return {
        "traces": len(records),
        "blocks": len(block_tokens),
        "blocks_per_trace": statistics.mean(len(r["blocks"]) for r in records),
        "tokens_per_block": statistics.mean(block_tokens),
        "tokens_per_memento": statistics.mean(memento_tokens),
        "memento_to_block_tokens": memento_to_block_ratio(sum(memento_tokens), sum(block_tokens)),
        "memento_to_block_tokens_per_block": _percentiles(tokens) if tokens else None,
        "memento_to_block_chars": _percentiles(chars) if chars else None,
        "memento_to_block_chars_median_by_domain": {d: statistics.median(v) for d, v in chars_by_domain.items()},
        "paper_chars_median_by_domain": PAPER_CHARS_MEDIAN,
        "judge_scores": judge,
        "judge_score_mean": judge["mean"] if judge else None,
        "mementos_rewritten": sum(len(r.get("mementos_rewritten") or []) for r in records),
        "records_refined": sum(bool(r.get("refinement_rounds")) for r in records),
        "mementos_longer_than_block": sum(len(entry["blocks"]) for entry in longer),
        "records_with_mementos_longer_than_blocks": longer,
    }


def _against_paper(domain: str, median: float) -> str:
    paper = PAPER_CHARS_MEDIAN.get(domain)
    if paper is None:
        return "(paper: math 0.16, code 0.18, science 0.23)"
    return f"(paper {paper:.2f}: {median / paper:.1f}x)"


def format_stats(stats: dict[str, Any]) -> list[str]:
    """The statistics as the lines `memento data stats` (and the build's summary) print."""
    lines = [
        f"traces {stats['traces']}, blocks per trace {stats['blocks_per_trace']:.1f}",
        f"tokens per block {stats['tokens_per_block']:.0f} (paper ~{PAPER_TOKENS_PER_BLOCK:,}), per memento "
        f"{stats['tokens_per_memento']:.0f} (paper ~{PAPER_TOKENS_PER_MEMENTO})",
    ]
    if stats["memento_to_block_tokens"] is not None:
        lines.append(
            f"memento/block tokens over all blocks: {stats['memento_to_block_tokens']:.2f} "
            f"(paper ~{PAPER_TOKENS_PER_MEMENTO / PAPER_TOKENS_PER_BLOCK:.2f}, the inverse of its '~6x')"
        )
    per_block = stats["memento_to_block_tokens_per_block"]
    if per_block is not None:
        lines.append(
            f"memento/block tokens per block: p10 {per_block['p10']:.2f}, median {per_block['p50']:.2f}, "
            f"p90 {per_block['p90']:.2f}"
        )
    ratio = stats["memento_to_block_chars"]
    if ratio is not None:
        lines.append(
            f"memento/block chars per block: p10 {ratio['p10']:.2f}, median {ratio['p50']:.2f}, p90 {ratio['p90']:.2f} "
            "(paper medians: math 0.16, code 0.18, science 0.23)"
        )
    for domain, median in stats["memento_to_block_chars_median_by_domain"].items():
        lines.append(f"  {domain}: median {median:.2f} {_against_paper(domain, median)}")
    judge = stats["judge_scores"]
    if judge is not None:
        histogram = ", ".join(f"{score}: {count}" for score, count in judge["histogram"].items())
        lines.append(
            f"judge scores ({judge['count']}): mean {judge['mean']:.1f}, min {judge['min']:g}, median "
            f"{judge['p50']:g}; histogram {{{histogram}}}"
        )
        lines.append(
            f"mementos rewritten after the judge: {stats['mementos_rewritten']} "
            f"(in {stats['records_refined']} of {stats['traces']} traces)"
        )
    longer = stats["records_with_mementos_longer_than_blocks"]
    if longer:
        shown = ", ".join(f"{e['task_id']} (blocks {', '.join(map(str, e['blocks']))})" for e in longer[:5])
        more = f" and {len(longer) - 5} more" if len(longer) > 5 else ""
        lines.append(
            f"FLAGGED: {stats['mementos_longer_than_block']} mementos longer than their block, "
            f"in {len(longer)} records: {shown}{more}"
        )
    return lines

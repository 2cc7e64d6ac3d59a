"""`memento data export`: a built folder as the released OpenMementos dataset's schema (parquet).

Rows carry OpenMementos' columns (`training.openmementos`): `problem`, `response` (the whole
memento text, ``<think>`` included), `domain`, `source`, `difficulty`; config ``full`` adds
`sentences`, `blocks` ([start, end] sentence indices, end inclusive) and `block_summaries`. The
``full`` columns are the pipeline's own: its sentences and block ranges, its mementos. The file
reads with ``datasets.load_dataset("parquet", data_files=...)`` and trains with
``memento train --data FILE.parquet`` exactly as the folder's records do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memento.data.build import RECORDS
from memento.data.schemas import check_record
from memento.format import parse_text, read_jsonl
from memento.training.openmementos import CONFIGS, row_from_trace

FORMATS = ("openmementos",)


def _schema(config: str) -> Any:
    import pyarrow as pa

    fields = [
        ("problem", pa.string()),
        ("response", pa.string()),
        ("domain", pa.string()),
        ("source", pa.string()),
        ("difficulty", pa.int64()),
    ]
    if config == "full":
        fields += [
            ("sentences", pa.list_(pa.string())),
            ("blocks", pa.list_(pa.list_(pa.int64()))),
            ("block_summaries", pa.list_(pa.string())),
        ]
    return pa.schema(fields)


def openmementos_row(record: dict[str, Any], *, config: str = "full", source: str = "") -> dict[str, Any]:
    """One `memento data build` record as an OpenMementos row (`source` when the record has none)."""
    where = f"record {record.get('task_id')!r}"
    trace = parse_text(record["text"], source=where)
    trace.prompt = str(record.get("problem") or trace.prompt or "")
    difficulty = record.get("difficulty")
    row = row_from_trace(
        trace,
        domain=str(record.get("domain") or ""),
        source=str(record.get("source") or source),
        difficulty=difficulty if isinstance(difficulty, int) and not isinstance(difficulty, bool) else 0,
    )
    if config == "full":
        row["sentences"] = list(record["sentences"])
        row["blocks"] = [[int(a), int(b)] for a, b in record["block_ranges"]]
        row["block_summaries"] = list(record["mementos"])
    return row


@dataclass
class Exported:
    """What an export wrote: `rows`, and the malformed records it left out (`skipped`: one line each)."""

    rows: int
    skipped: list[str] = field(default_factory=list)


class MalformedRecords(ValueError):
    """Records that are not whole records of `memento data build`; nothing was written."""


def export_openmementos(
    directory: str | Path,
    output: str | Path,
    *,
    config: str = "full",
    source: str = "memento-data-build",
    skip_malformed: bool = False,
) -> Exported:
    """Write the folder's records to `output` (.parquet) in OpenMementos' `config` schema.

    Every record is checked first (`schemas.check_record`): a malformed one is never written. With any,
    `MalformedRecords` (one line: how many, the first one's file:line and field) and nothing is written,
    unless `skip_malformed`: then the others are, and `Exported.skipped` says which were not. Written to a
    temporary name first and renamed: an interrupted export leaves no partial file.
    """
    import pyarrow as pa
    import pyarrow.parquet as parquet

    if config not in CONFIGS:
        raise ValueError(f"config must be one of {CONFIGS}, got {config!r}")
    path = Path(directory) / RECORDS
    rows, skipped, total = [], [], 0
    for number, record in read_jsonl(path):
        total += 1
        try:
            check_record(record, f"{path}:{number}")
        except ValueError as error:
            skipped.append(str(error))
            continue
        rows.append(openmementos_row(record, config=config, source=source))
    if skipped and not skip_malformed:
        raise MalformedRecords(
            f"{len(skipped)} of {total} records are malformed, nothing written (--skip-malformed writes the "
            f"{total - len(skipped)} others); first: {skipped[0]}"
        )
    if not rows:
        raise MalformedRecords(f"{path}: no record to export ({total} lines, {len(skipped)} malformed)")
    table = pa.Table.from_pylist(rows, schema=_schema(config))
    output = Path(output)
    staging = output.with_name(f".{output.name}.partial")
    try:
        parquet.write_table(table, staging)
        os.replace(staging, output)
    finally:
        staging.unlink(missing_ok=True)
    return Exported(len(rows), skipped)

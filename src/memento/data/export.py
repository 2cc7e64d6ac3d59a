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
from pathlib import Path
from typing import Any

from memento.data.stats import read_records
from memento.format import parse_text
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


def export_openmementos(
    directory: str | Path, output: str | Path, *, config: str = "full", source: str = "memento-data-build"
) -> int:
    """Write the folder's records to `output` (.parquet) in OpenMementos' `config` schema; returns the row count.

    Written to a temporary name first and renamed: an interrupted export leaves no partial file.
    """
    import pyarrow as pa
    import pyarrow.parquet as parquet

    if config not in CONFIGS:
        raise ValueError(f"config must be one of {CONFIGS}, got {config!r}")
    rows = [openmementos_row(record, config=config, source=source) for record in read_records(directory)]
    table = pa.Table.from_pylist(rows, schema=_schema(config))
    output = Path(output)
    staging = output.with_name(f".{output.name}.partial")
    try:
        parquet.write_table(table, staging)
        os.replace(staging, output)
    finally:
        staging.unlink(missing_ok=True)
    return len(rows)

"""OpenMementos (microsoft/OpenMementos, MIT): rows <-> traces, and reading its rows from wherever they are.

Config ``default``: `problem`, `response` (the whole memento text, ``<think>`` included),
`domain`, `source`, `difficulty` (int). Config ``full`` adds `sentences`, `blocks` ([start, end]
sentence indices, end inclusive) and `block_summaries`. Training uses `problem` + `response`
in both configs (the extra columns describe how the response was built); `domain`, `source`
and `difficulty` become the trace's metadata, which the data selection filters on.

Rows are read from a local ``.jsonl`` or ``.parquet`` file (streamed), a local folder laid out
as the hub repository, or the hub itself by name through `datasets` (streamed; only when the
hub is reachable).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from memento.data.split import split_sentences
from memento.format import Trace, TraceFormatError, parse_text, read_jsonl, render_assistant

HUB_NAME = "microsoft/OpenMementos"
CONFIGS = ("default", "full")
DEFAULT_COLUMNS = ("problem", "response", "domain", "source", "difficulty")
FULL_COLUMNS = (*DEFAULT_COLUMNS, "sentences", "blocks", "block_summaries")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_FILE_SUFFIXES = frozenset({".json", ".jsonl", ".parquet", ".txt", ".md"})


def is_row(record: Any) -> bool:
    """True for a mapping with OpenMementos' `problem` and `response` columns."""
    return isinstance(record, Mapping) and "response" in record and "problem" in record


def is_hub_name(location: str | Path) -> bool:
    """`owner/name` that is not a local path (nor a missing file's name: `data/x.jsonl` is a path)."""
    text = str(location)
    if Path(text).suffix.lower() in _FILE_SUFFIXES:
        return False
    return bool(_HUB_ID.fullmatch(text)) and not Path(text).exists()


def trace_from_row(row: Mapping[str, Any], *, source: str) -> Trace:
    """The trace of one row: user turn `problem`, assistant turn parsed from `response`."""
    problem, response = row.get("problem"), row.get("response")
    if not isinstance(problem, str) or not isinstance(response, str):
        raise TraceFormatError("'problem' and 'response' must be strings", expected="OpenMementos row", source=source)
    trace = parse_text(response, source=source)
    trace.prompt = problem
    trace.metadata = {key: row[key] for key in ("domain", "source", "difficulty") if key in row}
    return trace


def row_from_trace(trace: Trace, *, config: str = "default", domain: str = "", source: str = "", difficulty: int = 0):
    """A row in OpenMementos' schema (`config` default or full) holding `trace`; `trace_from_row` inverts it.

    `full`: the sentences are exact spans of each block's text (`memento.data.split`), so the
    blocks' sentences concatenated give the block back.
    """
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {CONFIGS}, got {config!r}")
    row: dict[str, Any] = {
        "problem": trace.prompt,
        "response": render_assistant(trace),
        "domain": domain,
        "source": source,
        "difficulty": int(difficulty),
    }
    if config == "full":
        sentences: list[str] = []
        blocks: list[list[int]] = []
        for block in trace.blocks:
            pieces = split_sentences(block.reasoning).sentences or [block.reasoning]
            blocks.append([len(sentences), len(sentences) + len(pieces) - 1])
            sentences.extend(pieces)
        row.update(sentences=sentences, blocks=blocks, block_summaries=[b.memento or "" for b in trace.blocks])
    return row


def read_rows(location: str | Path, *, config: str = "default", split: str = "train") -> Iterator[tuple[str, Any]]:
    """(name, row) for every row of a .jsonl / .parquet file, a hub-layout folder, or a hub dataset name."""
    if config not in CONFIGS:
        raise ValueError(f"OpenMementos config must be one of {CONFIGS}, got {config!r}")
    path = Path(location)
    if is_hub_name(location) or path.is_dir():
        yield from _read_with_datasets(str(location), config, split)
    elif path.suffix == ".parquet":
        yield from _read_parquet(path)
    else:
        for number, record in read_jsonl(path):
            yield f"{path.name}:{number}", record


def _read_parquet(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as parquet

    try:
        handle = parquet.ParquetFile(str(path))
    except Exception as error:  # pyarrow raises ArrowInvalid / OSError subclasses
        raise ValueError(f"{path}: not a readable parquet file ({error})") from None
    missing = [c for c in ("problem", "response") if c not in handle.schema_arrow.names]
    if missing:
        raise ValueError(f"{path}: no column {missing} (expected OpenMementos' {', '.join(DEFAULT_COLUMNS)})")
    index = 0
    for batch in handle.iter_batches(batch_size=256):
        for row in batch.to_pylist():
            index += 1
            yield f"{path.name}:{index}", row


def _read_with_datasets(location: str, config: str, split: str) -> Iterator[tuple[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise ValueError(f"reading {location} needs the datasets package (pip install datasets)") from None
    try:
        rows = datasets.load_dataset(location, config, split=split, streaming=True)
        iterator = iter(rows)
        first = next(iterator, None)
    except Exception as error:  # network, missing config/split, unreadable files: one line for all
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"could not read {location} (config {config!r}, split {split!r}) through datasets: {reason}; "
            "without the hub, pass a local .parquet/.jsonl download"
        ) from None
    name = location.rstrip("/").split("/")[-1]
    if first is None:
        return
    yield f"{name}:1", first
    for index, row in enumerate(iterator, start=2):
        yield f"{name}:{index}", row

"""Which traces a training run reads: any mix of trace files and OpenMementos, filtered and limited.

A location is a trace file `memento.format.load_traces` reads (authors' JSON, data-pipeline
JSONL, memento text), or OpenMementos rows (a .jsonl whose records have `problem` + `response`,
a .parquet file, a hub-layout folder, or a hub name such as ``microsoft/OpenMementos``).
`DataSelection` filters on the traces' metadata (`domain`, `source`, `difficulty`) and stops
after `limit` traces, so a streamed subset of the 228K rows never downloads the rest.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from memento.format import Trace, load_traces, read_jsonl
from memento.training import openmementos


@dataclass(frozen=True)
class DataSelection:
    """Which rows of the training data to use (OpenMementos' columns; other traces by their metadata)."""

    limit: int | None = field(
        default=None, metadata={"flag": "--data-limit", "help": "use at most this many traces (after the filters)"}
    )
    config: Literal["default", "full"] = field(
        default="default",
        metadata={"flag": "--data-config", "help": "OpenMementos config for a hub name or folder: default or full"},
    )
    split: str = field(
        default="train", metadata={"flag": "--data-split", "help": "dataset split for a hub name or folder"}
    )
    domains: str | None = field(
        default=None,
        metadata={"flag": "--data-domains", "help": "keep these domains only, comma-separated (e.g. math,science)"},
    )
    sources: str | None = field(
        default=None, metadata={"flag": "--data-sources", "help": "keep these sources only, comma-separated"}
    )
    difficulty: str | None = field(
        default=None,
        metadata={"flag": "--data-difficulty", "help": "keep these difficulties: N, A-B, or a list of those (6-8,10)"},
    )

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"data limit must be >= 1, got {self.limit}")
        if self.config not in openmementos.CONFIGS:
            raise ValueError(f"data config must be one of {openmementos.CONFIGS}, got {self.config!r}")
        self.difficulty_ranges()  # validates

    def difficulty_ranges(self) -> list[tuple[int, int]] | None:
        """The difficulty filter as inclusive (low, high) ranges, or None for no filter."""
        if self.difficulty is None:
            return None
        ranges = []
        for part in self.difficulty.split(","):
            low, _, high = part.strip().partition("-")
            try:
                ranges.append((int(low), int(high) if high else int(low)))
            except ValueError:
                raise ValueError(f"difficulty filter {self.difficulty!r}: expected N, A-B or a list of those") from None
        return ranges

    def matches(self, fields: Mapping[str, Any]) -> bool:
        """True when a row (or a trace's metadata) passes every filter; a filtered field that is absent fails."""
        for wanted, key in ((self.domains, "domain"), (self.sources, "source")):
            if wanted is not None:
                allowed = {w.strip().lower() for w in wanted.split(",")}
                if str(fields.get(key, "")).lower() not in allowed:
                    return False
        ranges = self.difficulty_ranges()
        if ranges is not None:
            value = fields.get("difficulty")
            if not isinstance(value, int) or not any(low <= value <= high for low, high in ranges):
                return False
        return True


def read_traces(locations: Iterable[str | Path], selection: DataSelection | None = None) -> list[tuple[str, Trace]]:
    """Named traces from every location in order, filtered, at most `selection.limit` in all."""
    selection = selection or DataSelection()
    selected = (
        (name, trace)
        for location in locations
        for name, trace in _traces(location, selection)
        if selection.matches(trace.metadata)
    )
    return list(itertools.islice(selected, selection.limit))


def _traces(location: str | Path, selection: DataSelection) -> Iterator[tuple[str, Trace]]:
    if not _is_openmementos(location):
        yield from load_traces(location)
        return
    for name, row in openmementos.read_rows(location, config=selection.config, split=selection.split):
        if not openmementos.is_row(row):
            raise ValueError(f"{name}: expected an OpenMementos row with 'problem' and 'response'")
        if selection.matches(row):  # filter before parsing: a streamed subset parses only what it keeps
            yield name, openmementos.trace_from_row(row, source=name)


_DATASET_SUFFIXES = frozenset({".parquet", ".jsonl", ".json", ".arrow", ".csv"})
"""Files `datasets` reads from a folder laid out as a hub repository."""


def location_kind(location: str | Path) -> str:
    """What a data location is, checked before any reading: 'hub', 'folder', 'parquet', 'rows' (OpenMementos
    JSONL) or 'traces'; a missing path raises FileNotFoundError, a folder without dataset files ValueError
    (one line each)."""
    path = Path(location)
    if openmementos.is_hub_name(location):
        return "hub"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file, folder or hub dataset name (owner/name)")
    if path.is_dir():
        if not any(p.suffix in _DATASET_SUFFIXES for p in path.rglob("*")):
            raise ValueError(
                f"{path}: is a directory without dataset files (expected a trace file, an OpenMementos "
                ".parquet/.jsonl file, or a folder laid out as the hub repository)"
            )
        return "folder"
    if path.suffix == ".parquet":
        return "parquet"
    if path.suffix == ".jsonl":
        first = next(read_jsonl(path), None)
        if first is not None and openmementos.is_row(first[1]):
            return "rows"
    return "traces"


def _is_openmementos(location: str | Path) -> bool:
    return location_kind(location) != "traces"

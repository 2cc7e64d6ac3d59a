"""Read a table of rows from a local file: JSONL (optionally gzipped), JSON or parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memento import textfiles
from memento.eval.benchmarks.rows import BenchmarkFormatError

TABLE_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")


def read_rows(path: str | Path) -> list[Any]:
    """Rows of `path` in file order.

    * ``.jsonl`` / ``.jsonl.gz``: one JSON value per line (blank lines skipped);
    * ``.json``: a list of rows, or an object holding one under ``problems``, ``data`` or ``rows``;
    * ``.parquet``: read with pyarrow (installed with ``pip install memento[eval]``).

    Raises `BenchmarkFormatError` naming the file (and line) on anything else.
    """
    path = Path(path)
    name = path.name
    if name.endswith((".jsonl", ".jsonl.gz")):
        return _read_jsonl(path)
    if name.endswith(".json"):
        return _read_json(path)
    if name.endswith(".parquet"):
        return _read_parquet(path)
    raise BenchmarkFormatError(f"{path}: unknown file type; expected one of {', '.join(TABLE_SUFFIXES)}")


def _read_jsonl(path: Path) -> list[Any]:
    return [row for _, row in textfiles.read_jsonl(path, error=BenchmarkFormatError)]


def _read_json(path: Path) -> list[Any]:
    data = textfiles.read_json(path, error=BenchmarkFormatError)
    if isinstance(data, dict):
        for key in ("problems", "data", "rows"):
            if isinstance(data.get(key), list):
                return data[key]
        raise BenchmarkFormatError(f"{path}: a JSON object without a 'problems', 'data' or 'rows' list")
    if not isinstance(data, list):
        raise BenchmarkFormatError(f"{path}: expected a JSON list of problems")
    return data


def _read_parquet(path: Path) -> list[Any]:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise BenchmarkFormatError(
            f"{path}: reading parquet needs pyarrow (pip install 'memento[eval]' or pip install pyarrow)"
        ) from None
    try:
        return parquet.read_table(path).to_pylist()
    except Exception as error:  # pyarrow raises its own error types for corrupt files
        raise BenchmarkFormatError(f"{path}: not a readable parquet file ({error})") from None

"""The resumable result file: one JSON object per line, appended and fsynced per problem."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from memento.format import read_jsonl


class ResultLog:
    """Results by problem id, mirrored to an append-only JSONL file when `path` is given.

    On opening, a torn last line (a run killed mid-write) is cut off and the records already
    there are read: `done` maps each id whose last record has no "error" to that record, so a
    rerun skips it. A failed problem is written with its "error" and solved again next run.
    `write()` may be called from many threads.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)
        self.done: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        if self.path is None or not self.path.exists():
            return
        _drop_torn_line(self.path)
        for number, record in read_jsonl(self.path):
            if not isinstance(record, dict) or "id" not in record:
                raise ValueError(f"{self.path}:{number}: not a result record (expected an object with 'id')")
            if "error" in record:
                self.done.pop(str(record["id"]), None)
            else:
                self.done[str(record["id"])] = record

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (with its "id") and make it durable before returning."""
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if "error" not in record:
                self.done[str(record["id"])] = record
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, line)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)


def _drop_torn_line(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)

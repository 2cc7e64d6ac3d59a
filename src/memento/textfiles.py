"""The one reader of the user's text files: UTF-8 text, JSON, JSON lines (``.jsonl`` or gzipped ``.jsonl.gz``).

Every fault is one line naming the file, the line and the byte offset in the file (of the
uncompressed text, for a gzipped file): bytes that are not UTF-8, invalid JSON (at the real
column: a line cut off at its end is reported where it ends, not at its newline), a ``.gz``
file that is not gzip or is cut off. Callers choose the error class (`error`), a `ValueError`
built from the message alone, so that their own error types stay as documented.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from memento.errors import UsageError

ErrorFactory = Callable[[str], ValueError]


class FileFormatError(UsageError):
    """A file that cannot be read as the text, JSON or JSON lines asked for; says where (file:line, byte)."""


def _raw_lines(path: Path, error: ErrorFactory) -> Iterator[tuple[int, int, bytes]]:
    """(line number from 1, byte offset of the line's start, the line's bytes with its newline)."""
    gzipped = path.name.endswith(".gz")
    offset = 0
    with gzip.open(path, "rb") if gzipped else path.open("rb") as handle:
        number = 0
        while True:
            try:
                line = handle.readline()
            except (gzip.BadGzipFile, EOFError, zlib.error) as fault:
                reason = " ".join(str(fault).split()) or type(fault).__name__
                raise error(f"{path}: not a readable gzip file ({reason})") from None
            if not line:
                return
            number += 1
            yield number, offset, line
            offset += len(line)


def _not_utf8(path: Path, number: int, offset: int, byte: int) -> str:
    where = "of the uncompressed text" if path.name.endswith(".gz") else "of the file"
    return f"{path}:{number}: not UTF-8: byte 0x{byte:02x} at byte offset {offset} {where}; expected UTF-8 text"


def _decode(line: bytes, path: Path, number: int, offset: int, error: ErrorFactory) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as fault:
        raise error(_not_utf8(path, number, offset + fault.start, line[fault.start])) from None


def read_lines(path: str | Path, *, error: ErrorFactory = FileFormatError) -> Iterator[tuple[int, int, str]]:
    """(line number, byte offset of the line, text without its line ending) for every line of `path`."""
    path = Path(path)
    for number, offset, raw in _raw_lines(path, error):
        yield number, offset, _decode(raw, path, number, offset, error).rstrip("\r\n")


def _json_fault(fault: json.JSONDecodeError, text: str, where: str, offset: int) -> str:
    byte = offset + len(text[: fault.pos].encode("utf-8"))
    position = f"column {fault.colno} (byte offset {byte})"
    if fault.pos >= len(text.rstrip()):
        position += ", where the line ends"
    return f"{where}: invalid JSON at {position}: {fault.msg}"


def read_jsonl(path: str | Path, *, error: ErrorFactory = FileFormatError) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for every non-blank line of a ``.jsonl`` (or ``.jsonl.gz``) file."""
    path = Path(path)
    for number, offset, text in read_lines(path, error=error):
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as fault:
            raise error(_json_fault(fault, text, f"{path}:{number}", offset)) from None


def _decode_all(path: Path, error: ErrorFactory) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as fault:
        number = data.count(b"\n", 0, fault.start) + 1
        raise error(_not_utf8(path, number, fault.start, data[fault.start])) from None


def read_text(path: str | Path, *, error: ErrorFactory = FileFormatError) -> str:
    """The whole text of `path` (UTF-8; line endings as `Path.read_text` gives them: ``\\n``)."""
    return _decode_all(Path(path), error).replace("\r\n", "\n").replace("\r", "\n")


def read_json(path: str | Path, *, error: ErrorFactory = FileFormatError) -> Any:
    """The one JSON value of `path`; invalid JSON is reported at its line, column and byte offset."""
    path = Path(path)
    text = _decode_all(path, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as fault:
        start = text.rfind("\n", 0, fault.pos) + 1
        end = text.find("\n", fault.pos)
        line = text[start : len(text) if end < 0 else end].rstrip("\r")
        offset = len(text[:start].encode("utf-8"))
        relative = json.JSONDecodeError(fault.msg, line, min(fault.pos - start, len(line)))
        raise error(_json_fault(relative, line, f"{path}:{fault.lineno}", offset)) from None

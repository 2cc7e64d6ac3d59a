"""Ids of the records of a JSONL file: JSON scalars kept as given, compared as given, one line each.

`1`, `1.0`, `true` and `"1"` are four different ids (their JSON texts differ); a repeated id is
refused naming both of its lines, so that no output ever holds two records under one id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RecordId = str | int | float | bool
"""A JSON scalar other than null."""


def check_record_id(value: Any, where: str, field: str) -> RecordId:
    """`value` when it is a usable id (a string, number or boolean); else `ValueError` naming `where` and `field`."""
    if isinstance(value, str | int | float):  # bool is an int
        return value
    given = "null" if value is None else f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    raise ValueError(f"{where}: field {field!r}: expected a string or a number, got {given}")


def id_key(value: RecordId) -> str:
    """How ids are compared: their JSON text (so 1 and "1" stay apart)."""
    return json.dumps(value, ensure_ascii=False)


def id_line(value: RecordId) -> str:
    """An id as one line of a text file: a plain string as itself; any other id, or a string that would read as
    another JSON value or spans lines, as its JSON text."""
    if isinstance(value, str) and "\n" not in value:
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, ensure_ascii=False)


class IdLines:
    """The line each id of one file was first seen on; a repeat raises `error` naming both lines."""

    def __init__(self, source: str | Path, field: str, error: type[ValueError] = ValueError) -> None:
        self.source, self.field, self.error = source, field, error
        self._first: dict[str, int] = {}

    def add(self, value: RecordId, number: int) -> None:
        """Note that line `number` holds the id `value`."""
        first = self._first.setdefault(id_key(value), number)
        if first != number:
            raise self.error(
                f"{self.source}:{number}: field {self.field!r}: {value!r} is already the id of line {first}; "
                "each record needs its own id"
            )

"""Checks of JSON read back from a file: is each field of the kind the code that reads it expects?

A shape is a mapping of field name -> kinds, kinds one or more of ``string``, ``integer``, ``number``,
``boolean``, ``object``, ``list``, ``null`` joined by ``|`` (JSON's own kinds; a boolean is never a
number). A value of another kind is a `ShapeError` (a ValueError: one line, exit 2 at the command
line) naming where (``FILE`` or ``FILE:LINE``), the field (dotted: ``modes.memento.config``), what was
expected and what was found.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "list": list,
    "null": type(None),
}
_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "list": "a list",
    "null": "null",
}

Shape = Mapping[str, str]
"""Field name -> kinds (``"string|null"``)."""


class ShapeError(ValueError):
    """JSON of the wrong shape; the message names the file, the field, what was expected and what was found."""


def describe(value: Any) -> str:
    """What a JSON value is, as a message says it: ``a list``, ``a number``, ``null``..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    for kind in ("string", "object", "list", "null"):
        if isinstance(value, _TYPES[kind]):
            return _NAMES[kind]
    return type(value).__name__


def is_kind(value: Any, kinds: str) -> bool:
    """Whether `value` is one of `kinds` (``"integer|null"``)."""
    if isinstance(value, bool):
        return "boolean" in kinds.split("|")
    return any(isinstance(value, _TYPES[kind]) for kind in kinds.split("|"))


def check(value: Any, kinds: str, where: str, field: str = "") -> Any:
    """`value` when it is one of `kinds`, else `ShapeError` naming `where` and `field`."""
    if not is_kind(value, kinds):
        expected = " or ".join(_NAMES[kind] for kind in kinds.split("|"))
        if expected == "an object" and not field:
            expected = "a JSON object"
        label = f"{field}: " if field else ""
        raise ShapeError(f"{where}: {label}expected {expected}, got {describe(value)}")
    return value


def check_fields(
    value: Any, shape: Shape, where: str, *, field: str = "", required: Iterable[str] = ()
) -> dict[str, Any]:
    """`value` when it is an object whose fields present in `shape` have their kinds and `required` ones are
    there (other fields are not looked at); `field` is the object's own dotted name, for messages."""
    check(value, "object", where, field)
    prefix = f"{field}." if field else ""
    for name in required:
        if name not in value:
            expected = " or ".join(_NAMES[kind] for kind in shape[name].split("|"))
            raise ShapeError(f"{where}: {prefix}{name}: missing, expected {expected}")
    for name, kinds in shape.items():
        if name in value:
            check(value[name], kinds, where, prefix + name)
    return value


def check_items(values: Iterable[Any], kinds: str, where: str, field: str) -> None:
    """Every item of a list (or value of an object) is one of `kinds`; the message names the item."""
    items = values.items() if isinstance(values, Mapping) else enumerate(values)
    for key, item in items:
        check(item, kinds, where, f"{field}[{key!r}]" if isinstance(key, str) else f"{field}[{key}]")

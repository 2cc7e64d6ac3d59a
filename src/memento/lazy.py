"""Packages whose public names load their submodule on first use (PEP 562), so importing them stays light.

`memento.eval`, `memento.inference`, `memento.training`, `memento.rl` and `memento.prompted` re-export their
public names this way: ``import memento.inference`` (or a CLI's ``--help``) never loads torch until a name that
needs it is used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for `package`: ``exports`` maps a public name to its submodule (relative name).

    The value is imported on first access and cached in the package's namespace."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__

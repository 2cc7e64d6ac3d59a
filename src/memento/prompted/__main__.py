"""`python -m memento.prompted ...` is `memento prompted ...` (the flags come from `PromptedOptions`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run `memento prompted` with `argv` (default: the process's arguments)."""
    from memento.cli import main as memento_main

    return memento_main(["prompted", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())

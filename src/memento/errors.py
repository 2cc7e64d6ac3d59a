"""`UsageError`: bad input from the user; the `memento` command prints it as one line and exits with 2."""

from __future__ import annotations


class UsageError(ValueError):
    """A flag, file or value the program cannot use; the message names it and says what was expected."""

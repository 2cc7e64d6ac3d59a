"""Headless matplotlib for every PNG the package writes (demo, kv, eval, mask pictures)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """`matplotlib.pyplot` on the Agg backend: no display needed, safe in servers and CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def figure_to(
    path: str | Path, *, tight_rect: tuple[float, float, float, float] | None = None, **subplots: Any
) -> Iterator[tuple[Any, Any]]:
    """`plt.subplots(**subplots)`; on exit the figure is laid out, written to `path` at 110 dpi and closed.

    The figure is closed even when drawing fails, so a long-lived process does not accumulate figures.
    """
    plt = pyplot()
    figure, axes = plt.subplots(**subplots)
    try:
        yield figure, axes
        figure.tight_layout(rect=tight_rect) if tight_rect else figure.tight_layout()
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from memento.figures import figure_to


def test_a_figure_is_written_then_closed(tmp_path):
    before = set(plt.get_fignums())
    with figure_to(tmp_path / "line.png", figsize=(3, 2)) as (_, axis):
        axis.plot([0, 1], [1, 0])
    assert (tmp_path / "line.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(plt.get_fignums()) == before


def test_a_failed_drawing_writes_nothing_and_leaks_no_figure(tmp_path):
    before = set(plt.get_fignums())
    with pytest.raises(ZeroDivisionError), figure_to(tmp_path / "broken.png") as (_, axis):
        axis.plot([0, 1], [1, 1 / 0])
    assert not (tmp_path / "broken.png").exists() and set(plt.get_fignums()) == before

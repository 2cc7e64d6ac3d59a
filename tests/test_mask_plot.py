"""The mask picture draws the rule's own mask and the tracker's cache."""

from __future__ import annotations

import random

import numpy as np
import pytest

from memento.attention import visibility_mask
from memento.config import MementoConfig
from memento.counting import load_tokenizer
from memento.format import load_traces
from memento.kv import KVGeometry, simulate
from memento.mask_plot import DEFAULT_CONFIGS, EMPTY, HIDDEN, picture, plot_mask_picture, plot_trace
from tests.conftest import REAL_TRACES
from tests.models import SE, SPECIAL_IDS, memento_sequence

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("config", DEFAULT_CONFIGS, ids=str)
def test_picture_shows_the_mask_and_the_cache(config):
    sequence = memento_sequence(random.Random(2), blocks=4)
    drawn = picture(sequence, SPECIAL_IDS, config)
    allowed = visibility_mask(sequence, SPECIAL_IDS, config).numpy()
    causal = np.tril(np.ones_like(allowed))
    red = np.all(drawn.mask == HIDDEN, axis=-1)
    white = np.all(drawn.mask == EMPTY, axis=-1)
    assert np.array_equal(red, causal & ~allowed) and np.array_equal(white, ~causal)
    assert red.any()  # something is evicted in every default configuration
    # one strip per memento of the assistant (the prompt's markers are text), as long as the simulated cache
    report = simulate(sequence, SPECIAL_IDS, KVGeometry(1, 1, 1), config)
    ends = [p for p, t in enumerate(sequence) if t == SE][1:]
    assert drawn.cache_tokens == [report.occupancy[p] for p in ends]
    assert [int((~np.all(row == EMPTY, axis=-1)).sum()) for row in drawn.cache] == drawn.cache_tokens


def test_png_of_a_short_sequence_and_of_a_long_real_trace(tmp_path):
    sequence = memento_sequence(random.Random(3), blocks=3)
    pictures = plot_mask_picture(sequence, SPECIAL_IDS, tmp_path / "short.png")
    assert len(pictures) == 4 and (tmp_path / "short.png").read_bytes()[:8] == PNG
    name, trace = next(iter(load_traces(REAL_TRACES[0])))
    pictures = plot_trace(trace, load_tokenizer(None), tmp_path / "long.png", name=name)
    assert (tmp_path / "long.png").read_bytes()[:8] == PNG
    drawn = pictures[0]
    assert drawn.stride > 1 and drawn.mask.shape[0] <= 600  # thousands of tokens drawn on a sampled grid
    assert len(drawn.cache_tokens) == len(trace.blocks) and drawn.config == MementoConfig(mask_delimiters=False)

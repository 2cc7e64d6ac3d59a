from __future__ import annotations

import pytest
from transformers import Qwen3Config

from memento.errors import UsageError
from memento.inference.sampling import SamplingOptions, position_limit


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": 0.0}, "top_p"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"min_p": 2.0}, "min_p"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"stop": ("ok", "")}, "stop string"),
    ],
)
def test_invalid_options_are_refused(options, message):
    with pytest.raises(UsageError, match=message):
        SamplingOptions(**options)


def test_fit_context_fills_or_refuses():
    assert SamplingOptions().fit_context([10, 30], 100).max_new_tokens == 70  # None: the room the longest leaves
    assert SamplingOptions(max_new_tokens=70).fit_context([10, 30], 100).max_new_tokens == 70
    with pytest.raises(UsageError, match="prompt 2 has 30 tokens \\+ max_new_tokens 71 > the model's 100 positions"):
        SamplingOptions(max_new_tokens=71).fit_context([10, 30], 100)
    with pytest.raises(UsageError, match="prompt 1 has 100 tokens"):
        SamplingOptions().fit_context([100], 100)
    assert SamplingOptions(max_new_tokens=5).fit_context([10], None).max_new_tokens == 5
    with pytest.raises(UsageError, match="no position limit"):
        SamplingOptions().fit_context([10], None)


def test_position_limit_reads_the_model_config():
    assert position_limit(Qwen3Config(max_position_embeddings=2048)) == 2048
    assert position_limit(object()) is None


def test_as_kwargs_feed_generate():
    kwargs = SamplingOptions(max_new_tokens=4, stop=("x",)).as_kwargs()
    assert kwargs == {
        "max_new_tokens": 4,
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": 0,
        "min_p": 0.0,
        "seed": 0,
        "stop": ["x"],
    }

"""The plugin reads its options strictly: engine-wide and per request."""

from __future__ import annotations

import pytest

from memento.config import MementoConfig
from memento.vllm import plugin
from memento.vllm.state import CONFIG_ENV, engine_config, request_config


def test_request_config_overrides_the_engine_default():
    default = MementoConfig(mask_delimiters=False)
    assert request_config(None, default) == default
    assert request_config({"block_masking_config": {"enable": False}}, default) is None
    assert (
        request_config(
            {"block_masking_config": '{"enable": true, "keep_last_n_blocks": -1, "mask_delimiters": false}'}, default
        )
        is None
    )
    own = request_config(
        {"block_masking_config": {"enable": True, "keep_last_n_blocks": 1, "mask_delimiters": True}}, None
    )
    assert own == MementoConfig(keep_last_n_blocks=1, mask_delimiters=True)
    with pytest.raises(ValueError, match="restart_mode is not supported by the vLLM backend"):
        request_config({"block_masking_config": {"enable": True, "mask_delimiters": False, "restart_mode": True}}, None)


def test_bad_engine_config_fails_at_start_up_with_the_valid_options(monkeypatch):
    monkeypatch.setenv(CONFIG_ENV, '{"keep_last_n": 0}')
    with pytest.raises(ValueError, match=r"unknown memento config option.*keep_last_n_blocks"):
        plugin.register()
    monkeypatch.setenv(CONFIG_ENV, '{"enable": true}')
    with pytest.raises(ValueError, match="mask_delimiters"):
        engine_config()


def test_compact_on_summary_end_false_masks_nothing():
    # as in the authors' engine, no compaction trigger means nothing is ever evicted (see config.py)
    config = {"enable": True, "keep_last_n_blocks": 0, "mask_delimiters": False, "compact_on_summary_end": False}
    assert request_config({"block_masking_config": config}, None) is None

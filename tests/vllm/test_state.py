"""The plugin reads its options strictly: engine-wide and per request."""

from __future__ import annotations

import pytest

from memento.config import MementoConfig
from memento.vllm import plugin, state
from memento.vllm.state import CONFIG_ENV, engine_config, request_config

pytestmark = pytest.mark.vllm


def test_request_config_overrides_the_engine_default():
    default = MementoConfig(mask_delimiters=False)
    assert request_config(None, default) == default
    assert request_config({"block_masking_config": {"enable": False}}, default) is None
    assert (
        request_config({"block_masking_config": '{"keep_last_n_blocks": -1, "mask_delimiters": false}'}, default)
        is None
    )
    own = request_config(
        {"block_masking_config": {"enable": True, "keep_last_n_blocks": 1, "mask_delimiters": True}}, None
    )
    assert own == MementoConfig(keep_last_n_blocks=1, mask_delimiters=True)
    restart = {"enable": True, "mask_delimiters": False, "restart_mode": True}
    assert request_config({"block_masking_config": restart}, None) == MementoConfig(**restart)


def test_bad_engine_config_fails_at_start_up_with_the_valid_options(monkeypatch):
    monkeypatch.setenv(CONFIG_ENV, '{"keep_last_n": 0}')
    with pytest.raises(ValueError, match=r"unknown memento config option.*keep_last_n_blocks"):
        plugin.register()
    monkeypatch.setenv(CONFIG_ENV, '{"enable": true}')
    with pytest.raises(ValueError, match="mask_delimiters"):
        engine_config()


def test_compact_on_summary_end_false_is_accepted_with_a_warning(caplog):
    config = {"enable": True, "keep_last_n_blocks": 0, "mask_delimiters": False, "compact_on_summary_end": False}
    state._warn_once.cache_clear()  # warned once per process
    with caplog.at_level("WARNING", logger="memento.vllm.state"):
        assert request_config({"block_masking_config": config}, None) == MementoConfig.from_dict(config)
    assert "always gives evicted KV back to the pool" in caplog.text


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('{"enable": true,', "not valid JSON"),
        ('{"enable": true, "keep_last_n": 0, "mask_delimiters": false}', "keep_last_n"),
        ('{"enable": true, "keep_last_n_blocks": -7, "mask_delimiters": false}', "keep_last_n_blocks must be >= -1"),
        ('{"enable": true, "keep_last_n_blocks": [0], "mask_delimiters": false}', "keep_last_n_blocks"),
        (["a"], "must be a JSON object"),
    ],
)
def test_bad_request_configs_are_refused_at_admission_naming_the_field(monkeypatch, value, reason):
    """vLLM's frontend calls this hook on every request: a VLLMValidationError there is an HTTP 400."""
    from vllm.exceptions import VLLMValidationError

    from memento.vllm.validation import REQUEST_FIELD, RequestValidator
    from vllm import SamplingParams

    monkeypatch.setenv(CONFIG_ENV, '{"enable": true, "keep_last_n_blocks": 0, "mask_delimiters": false}')
    with pytest.raises(VLLMValidationError) as caught:
        RequestValidator.validate_params(SamplingParams(extra_args={"block_masking_config": value}))
    assert caught.value.parameter == REQUEST_FIELD == "vllm_xargs.block_masking_config"
    assert str(caught.value).startswith(REQUEST_FIELD + ": ") and reason in str(caught.value)
    RequestValidator.validate_params(SamplingParams(extra_args=None))  # the engine's default
    RequestValidator.validate_params(
        SamplingParams(
            extra_args={"block_masking_config": '{"enable": true, "keep_last_n_blocks": 2, "mask_delimiters": true}'}
        )
    )

"""The plugin's per-request state follows the one rule and reads its options strictly."""

from __future__ import annotations

import random

import pytest
import torch

from memento.attention import key_hidden_from
from memento.config import MementoConfig
from memento.vllm import plugin
from memento.vllm.state import CONFIG_ENV, NEVER, RequestStates, engine_config, request_config
from tests.models import SPECIAL_IDS, memento_sequence


@pytest.mark.parametrize(
    "config",
    [
        MementoConfig(mask_delimiters=False),
        MementoConfig(mask_delimiters=True),
        MementoConfig(mask_delimiters=False, keep_last_n_blocks=2),
        MementoConfig(mask_delimiters=True, keep_last_block_for_answer=True),
    ],
    ids=str,
)
def test_incremental_hidden_from_equals_the_rule(config):
    rng = random.Random(3)
    for _ in range(10):
        sequence = memento_sequence(rng, blocks=rng.randint(1, 6))
        state = RequestStates(SPECIAL_IDS, config).get("request", None)
        for upto in sorted({rng.randint(0, len(sequence)) for _ in range(4)} | {len(sequence)}):
            state.advance(sequence, upto)  # fed in uneven chunks, as decode and prefill steps arrive
        expected = key_hidden_from(sequence, SPECIAL_IDS, config)
        got = state.hidden_from
        never = expected == len(sequence)
        assert torch.equal(got[~never], expected[~never]) and (got[never] == NEVER).all()


def test_request_config_overrides_the_engine_default():
    default = MementoConfig(mask_delimiters=False)
    assert request_config(None, default) == default
    assert request_config({"block_masking_config": {"enable": False}}, default) is None
    assert (
        request_config({"block_masking_config": '{"keep_last_n_blocks": -1, "mask_delimiters": false}'}, default)
        is None
    )
    own = request_config({"block_masking_config": {"keep_last_n_blocks": 1, "mask_delimiters": True}}, None)
    assert own == MementoConfig(keep_last_n_blocks=1, mask_delimiters=True)
    with pytest.raises(ValueError, match="restart_mode is not supported by the vLLM backend"):
        request_config({"block_masking_config": {"mask_delimiters": False, "restart_mode": True}}, None)


def test_bad_engine_config_fails_at_start_up_with_the_valid_options(monkeypatch):
    monkeypatch.setenv(CONFIG_ENV, '{"keep_last_n": 0}')
    with pytest.raises(ValueError, match=r"unknown memento config option.*keep_last_n_blocks"):
        plugin.register()
    monkeypatch.setenv(CONFIG_ENV, '{"enable": true}')
    with pytest.raises(ValueError, match="mask_delimiters"):
        engine_config()

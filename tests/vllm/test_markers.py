"""The vLLM side finds the memento markers by the engine config's token names, as `SpecialIds.from_tokenizer`."""

from __future__ import annotations

import json

import pytest

from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.vllm.checks import StartupError, check_server_start
from memento.vllm.state import CONFIG_ENV, request_config, special_ids_for
from tests.conftest import build_tokenizer
from tests.models import save_checkpoint
from tests.servers import free_port

pytestmark = pytest.mark.vllm
OWN_MARKERS = {
    "block_start_token": "<blk>",
    "block_end_token": "</blk>",
    "summary_start_token": "<note>",
    "summary_end_token": "</note>",
}
ENGINE = MementoConfig(mask_delimiters=False, **OWN_MARKERS)


@pytest.fixture(scope="module")
def own_markers_model(tmp_path_factory: pytest.TempPathFactory):
    """A checkpoint whose tokenizer has its own four markers and not the standard memento tokens."""
    tokenizer = build_tokenizer(with_memento_tokens=False)
    tokenizer.add_tokens(list(OWN_MARKERS.values()), special_tokens=True)
    directory = tmp_path_factory.mktemp("own-markers")
    save_checkpoint(directory, tokenizer)
    return directory, tokenizer


def test_special_ids_follow_the_engine_configs_token_names(own_markers_model):
    directory, tokenizer = own_markers_model
    found = special_ids_for(str(directory), False, ENGINE)
    assert found == SpecialIds.from_tokenizer(tokenizer, ENGINE)
    assert found.memento_ids == tuple(tokenizer.convert_tokens_to_ids(list(OWN_MARKERS.values())))
    with pytest.raises(ValueError, match="lacks the memento tokens"):  # the standard names are not there
        special_ids_for(str(directory), False, None)


def test_start_refuses_a_config_whose_markers_the_tokenizer_lacks(own_markers_model):
    directory, _ = own_markers_model
    port = free_port()
    check_server_start(directory, ENGINE, host="127.0.0.1", port=port, environ={})
    with pytest.raises(StartupError, match=r"lacks the memento tokens \[\"block_start_token='<\|block_start\|>'\""):
        check_server_start(directory, MementoConfig(mask_delimiters=False), host="127.0.0.1", port=port, environ={})
    wrong = MementoConfig(mask_delimiters=False, **{**OWN_MARKERS, "summary_end_token": "<|nope|>"})
    with pytest.raises(StartupError, match=r"summary_end_token='<\|nope\|>'"):
        check_server_start(directory, wrong, host="127.0.0.1", port=port, environ={})


def test_a_request_cannot_rename_the_engines_markers(monkeypatch):
    from vllm.exceptions import VLLMValidationError

    from memento.vllm.validation import RequestValidator
    from vllm import SamplingParams

    same = {"enable": True, "keep_last_n_blocks": 1, "mask_delimiters": False, **OWN_MARKERS}
    assert request_config({"block_masking_config": same}, ENGINE).keep_last_n_blocks == 1
    renamed = {**same, "block_end_token": "</think>"}
    with pytest.raises(ValueError, match="block_end_token: the engine's markers are fixed at start"):
        request_config({"block_masking_config": renamed}, ENGINE)
    # without an engine config, a request keeps the standard markers
    with pytest.raises(ValueError, match="block_start_token: the engine's markers are fixed"):
        request_config({"block_masking_config": same}, None)

    monkeypatch.setenv(CONFIG_ENV, json.dumps(ENGINE.to_dict()))
    with pytest.raises(VLLMValidationError) as caught:
        RequestValidator.validate_params(SamplingParams(extra_args={"block_masking_config": renamed}))
    assert caught.value.parameter == "vllm_xargs.block_masking_config.block_end_token"

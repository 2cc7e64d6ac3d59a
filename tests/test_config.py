from __future__ import annotations

import json
import warnings

import pytest

from memento.config import MementoConfig, MementoConfigError, MementoConfigWarning, default_mask_delimiters
from memento.format import SpecialIds

# The authors' BlockMaskingConfig (microsoft/memento, vllm/config/block_masking.py): public fields and defaults.
AUTHORS_DEFAULTS = {
    "enable": False,
    "keep_last_n_blocks": 0,
    "block_start_token": "<|block_start|>",
    "block_end_token": "<|block_end|>",
    "summary_start_token": "<|summary_start|>",
    "summary_end_token": "<|summary_end|>",
    "require_assistant_section": True,
    "im_start_token": "<|im_start|>",
    "assistant_token": "assistant",
    "compact_on_summary_end": True,
    "mask_delimiters": None,
    "keep_last_block_for_answer": False,
    "restart_mode": False,
    "max_block_tokens": 0,
    "debug": False,
}


def test_json_defaults_are_the_authors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty object sets nothing: no warning
        assert MementoConfig.from_dict({}).to_dict() == AUTHORS_DEFAULTS
    # the Python constructor keeps its convenient default: on
    assert MementoConfig(mask_delimiters=False).to_dict() == {
        **AUTHORS_DEFAULTS,
        "enable": True,
        "mask_delimiters": False,
    }


def test_every_field_of_theirs_is_accepted_from_json():
    options = {**AUTHORS_DEFAULTS, "enable": True, "mask_delimiters": True, "keep_last_n_blocks": 1}
    options.update(block_start_token="151669", assistant_token="assistant", max_block_tokens=2048, debug=True)
    config = MementoConfig.from_json(json.dumps(options))
    assert config.to_dict() == options
    assert MementoConfig.from_dict(config.to_dict()) == config
    assert config.replace(keep_last_n_blocks=-1).evicts is False


def test_json_without_enable_is_off_and_warns():
    with pytest.warns(MementoConfigWarning, match=r"'keep_last_n_blocks'.*\"enable\": true"):
        config = MementoConfig.from_json('{"keep_last_n_blocks": 0, "mask_delimiters": false}')
    assert not config.enable and not config.evicts
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not MementoConfig.from_dict({"enable": False, "mask_delimiters": False}).enable  # said so: no warning
        assert MementoConfig.from_dict({"enable": True, "mask_delimiters": False}).evicts


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        (
            {"enable": True, "mask_delimiters": False, "keep_last_n_blocks": -7},
            "keep_last_n_blocks",
            "block_masking_config.keep_last_n_blocks: expected an integer >= -1 (-1 = never evict), got -7",
        ),
        (
            {"enable": True, "mask_delimiters": False, "keep_last_n_blocks": "3"},
            "keep_last_n_blocks",
            "block_masking_config.keep_last_n_blocks: expected an integer >= -1 (-1 = never evict), got '3'",
        ),
        (
            {"enable": True, "mask_delimiters": False, "keep_last_n_blocks": True},
            "keep_last_n_blocks",
            "got True",
        ),
        ({"enable": True, "mask_delimiters": False, "max_block_tokens": 1.5}, "max_block_tokens", "got 1.5"),
        ({"enable": True, "mask_delimiters": "yes"}, "mask_delimiters", "expected true or false, got 'yes'"),
        ({"enable": "true", "mask_delimiters": False}, "enable", "block_masking_config.enable: expected true or false"),
        ({"enable": True}, "mask_delimiters", "block_masking_config.mask_delimiters: required when"),
        ({"enable": True, "mask_delimiters": False, "block_end_token": ""}, "block_end_token", "got ''"),
        ({"enable": True, "mask_delimiters": False, "assistant_token": ["a"]}, "assistant_token", "got ['a']"),
        (
            {"enable": True, "mask_delimiters": False, "keep_last_n": 1},
            "keep_last_n",
            "block_masking_config.keep_last_n: unknown memento config option; valid options: [",
        ),
        (
            {"enable": True, "mask_delimiters": False, "restart_mode": True, "keep_last_n_blocks": 1},
            "restart_mode",
            "keep_last_n_blocks=0",
        ),
        (
            {"enable": True, "mask_delimiters": False, "restart_mode": True, "keep_last_block_for_answer": True},
            "restart_mode",
            "cannot be combined with keep_last_block_for_answer",
        ),
    ],
)
def test_errors_name_the_field_and_the_reason(options, field, message):
    with pytest.raises(MementoConfigError) as raised:
        MementoConfig.from_dict(options)
    assert isinstance(raised.value, ValueError)
    assert raised.value.field == field
    assert message in str(raised.value)


def test_bad_json_and_not_an_object():
    with pytest.raises(MementoConfigError, match=r"^block_masking_config: not valid JSON \(line 1, column 2\)"):
        MementoConfig.from_json("{enable: true}")
    with pytest.raises(MementoConfigError, match=r"^block_masking_config: expected a JSON object, got list"):
        MementoConfig.from_json("[1]")
    assert MementoConfig.disabled().evicts is False  # no mask_delimiters needed when disabled


def test_integer_token_ids_are_kept_as_strings():
    config = MementoConfig(mask_delimiters=False, block_start_token=7)
    assert config.block_start_token == "7"


def test_token_strings_resolve_against_the_tokenizer(tokenizer):
    standard = SpecialIds.from_tokenizer(tokenizer)
    assert SpecialIds.from_tokenizer(tokenizer, MementoConfig(mask_delimiters=False)) == standard
    # theirs: an integer string is an id; here the markers are renamed to other special tokens of the vocabulary
    swapped = MementoConfig(
        mask_delimiters=False,
        block_start_token="<think>",
        block_end_token="</think>",
        summary_start_token=str(standard.block_start),
        summary_end_token=str(standard.block_end),
    )
    ids = SpecialIds.from_tokenizer(tokenizer, swapped)
    assert ids.memento_ids == (standard.think_start, standard.think_end, standard.block_start, standard.block_end)
    assert ids.assistant_header == standard.assistant_header
    assert ids.assistant_header[0] == standard.im_start and len(ids.assistant_header) >= 2
    # a header named by ids
    by_id = SpecialIds.from_tokenizer(tokenizer, MementoConfig(mask_delimiters=False, assistant_token="99"))
    assert by_id.assistant_header == (standard.im_start, 99)
    # a header the vocabulary lacks: no assistant section can be found (theirs drops the requirement too)
    unknown = MementoConfig(mask_delimiters=False, im_start_token="<|no_such_token|>")
    assert SpecialIds.from_tokenizer(tokenizer, unknown).assistant_header is None
    with pytest.raises(ValueError, match=r"lacks the memento tokens \[\"block_end_token='<\|nope\|>'\"\]"):
        SpecialIds.from_tokenizer(tokenizer, MementoConfig(mask_delimiters=False, block_end_token="<|nope|>"))


def test_mask_delimiters_by_family():
    assert default_mask_delimiters("phi3") is True
    assert default_mask_delimiters("qwen3") is False
    assert default_mask_delimiters("olmo3") is False

from __future__ import annotations

import pytest

from memento.config import MementoConfig, default_mask_delimiters


def test_defaults_match_the_authors_block_masking_config():
    config = MementoConfig(mask_delimiters=False)
    assert config.to_dict() == {
        "enable": True,
        "keep_last_n_blocks": 0,
        "mask_delimiters": False,
        "compact_on_summary_end": True,
        "require_assistant_section": True,
        "restart_mode": False,
        "keep_last_block_for_answer": False,
        "max_block_tokens": 0,
        "debug": False,
    }
    assert config.evicts and not config.hides_delimiters


def test_from_json_in_the_authors_spelling():
    config = MementoConfig.from_json(
        '{"enable": true, "keep_last_n_blocks": 1, "mask_delimiters": true, "compact_on_summary_end": true,'
        ' "require_assistant_section": false, "max_block_tokens": 2048, "keep_last_block_for_answer": true}'
    )
    assert config.keep_last_n_blocks == 1 and config.mask_delimiters and config.max_block_tokens == 2048
    assert MementoConfig.from_dict(config.to_dict()) == config
    assert config.replace(keep_last_n_blocks=-1).evicts is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"enable": True}, "mask_delimiters is required"),
        ({"mask_delimiters": False, "keep_last_n_blocks": -2}, "keep_last_n_blocks must be >= -1"),
        ({"mask_delimiters": False, "max_block_tokens": -1}, "max_block_tokens must be >= 0"),
        ({"mask_delimiters": "yes"}, "mask_delimiters must be true or false"),
        ({"mask_delimiters": False, "keep_last_n_blocks": 1.5}, "must be an integer"),
        ({"mask_delimiters": False, "restart_mode": True, "keep_last_n_blocks": 1}, "keep_last_n_blocks=0"),
        (
            {"mask_delimiters": False, "restart_mode": True, "keep_last_block_for_answer": True},
            "cannot be combined",
        ),
        (
            {"mask_delimiters": False, "keep_last_n": 1},
            r"unknown memento config option\(s\) \['keep_last_n'\]",
        ),
    ],
)
def test_validation_errors_are_specific(options, message):
    with pytest.raises(ValueError, match=message):
        MementoConfig.from_dict(options)


def test_bad_json_and_disabled():
    with pytest.raises(ValueError, match="not valid JSON"):
        MementoConfig.from_json("{enable: true}")
    with pytest.raises(ValueError, match="must be a JSON object"):
        MementoConfig.from_json("[1]")
    assert MementoConfig.disabled().evicts is False  # no mask_delimiters needed when disabled


def test_mask_delimiters_by_family():
    assert default_mask_delimiters("phi3") is True
    assert default_mask_delimiters("qwen3") is False
    assert default_mask_delimiters("olmo3") is False

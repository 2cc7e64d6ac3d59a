"""`memento verify --block-masking-config`: the served config's attention rule is checked beside the built-in
two, so a plugin bug only that rule meets (here: keep_last_n_blocks read as 0) fails verify, and the serve gate."""

from __future__ import annotations

import pytest

from memento.config import MementoConfig
from memento.toy import CHECKPOINT
from memento.vllm import verify as verify_module
from tests.vllm.test_verify import _last_json, _verify

SERVED = '{"enable": true, "keep_last_n_blocks": 1, "mask_delimiters": false}'
"""A served config whose rule the built-in two do not cover: the last finished block stays visible."""
KEEP_IGNORED = """
import sys
from memento.vllm import state
request_config = state.request_config
def every_block_evicted(extra_args, default):  # a plugin bug: keep_last_n_blocks read as 0
    config = request_config(extra_args, default)
    return config if config is None else config.replace(keep_last_n_blocks=0)
state.request_config = every_block_evicted
from memento.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_verify_checks_the_served_masking_config_beside_the_built_in_two():
    process = _verify("--json", "--block-masking-config", SERVED)
    verdict = _last_json(process.stdout)
    assert process.returncode == 0, process.stderr[-2000:]
    assert [(c["keep_last_n_blocks"], c["mask_delimiters"]) for c in verdict["masking_configs"]] == [
        (0, False),
        (0, True),
        (1, False),
    ]
    assert verdict["decode_evictions"] == 3 * 4  # the served rule evicts too while decoding: block 3 of 4
    assert verdict["max_abs_logprob_diff"] < 1e-4 and verdict["tokens_equal"] is True


@pytest.mark.slow
def test_a_plugin_that_breaks_only_the_served_rule_fails_verify_given_that_config():
    """The built-in configs evict every block, so a plugin reading keep_last_n_blocks as 0 passes them: only the
    served config's check can catch it."""
    broken = _verify("--json", "--block-masking-config", SERVED, program=KEEP_IGNORED)
    verdict = _last_json(broken.stdout)
    assert broken.returncode == 1 and verdict["passed"] is False, broken.stderr[-2000:]
    assert verdict["can_tell"] is True and verdict["max_abs_logprob_diff"] > 10 * verdict["tolerance"]
    assert verdict["worst"].startswith("mask_delimiters=False keep_last_n_blocks=1 sequence ")
    assert "FAILED" in broken.stderr
    without = _verify("--json", program=KEEP_IGNORED)
    assert without.returncode == 0 and _last_json(without.stdout)["passed"] is True, without.stderr[-2000:]


def test_the_served_configs_markers_and_block_cap_are_checked_as_the_defaults():
    """verify's prompts are written in the default markers; a cap forces a token, it does not change the rule."""
    capped = verify_module.VerifyOptions(CHECKPOINT, masking=MementoConfig(mask_delimiters=True, max_block_tokens=64))
    assert capped.configs == verify_module.CONFIGS
    kept = verify_module.VerifyOptions(CHECKPOINT, masking=MementoConfig(mask_delimiters=False, keep_last_n_blocks=2))
    assert kept.configs == (*verify_module.CONFIGS, MementoConfig(mask_delimiters=False, keep_last_n_blocks=2))

"""The scripted-token logits processor forces each scripted token at its decode step (issue 30 item 3: verify's
memento closed during decoding), and leaves free steps and unscripted rows alone."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from vllm.v1.sample.logits_processor import BatchUpdate

from memento.vllm.forcing import ScriptedTokens
from memento.vllm.verify_script import FREE, SCRIPT_KEY


def test_scripted_tokens_are_forced_step_by_step_and_free_steps_left_alone():
    processor = ScriptedTokens(None, torch.device("cpu"), False)
    scripted, plain = [], []
    script = [7, FREE, 3]
    processor.update_state(
        BatchUpdate(
            2,
            [],
            [
                (0, SimpleNamespace(extra_args={SCRIPT_KEY: script}), [1, 2], scripted),
                (1, SimpleNamespace(extra_args=None), [1, 2], plain),
            ],
            [],
        )
    )
    logits = torch.randn(2, 10)
    for step in range(4):
        out = processor.apply(logits.clone())
        assert torch.equal(out[1], logits[1])  # an unscripted row is never touched
        if step < len(script) and script[step] != FREE:
            assert int(out[0].argmax()) == script[step] and torch.isinf(out[0]).sum() == 9
        else:
            assert torch.equal(out[0], logits[0])
        scripted.append(int(out[0].argmax()))  # vLLM appends the sampled token to its live list
        plain.append(0)

"""`memento verify`'s comparison with the HF reference (issue 30 item 3): greedy tokens judged only where the
reference's top-2 margin is clear, the negative control decides whether the check can tell at all."""

from __future__ import annotations

import pytest
import torch

from memento.inference.loading import load_model_and_tokenizer
from memento.toy import CHECKPOINT
from memento.vllm.verify import CONFIGS, TOLERANCES, decode_scripts, memento_prompts, random_model, verdict
from memento.vllm.verify_compare import compare, judge_tokens
from memento.vllm.verify_script import FREE


def _rows(*rows: tuple[int, float]) -> torch.Tensor:
    """Log-prob rows over 10 tokens: (argmax, margin to the runner-up)."""
    out = torch.full((len(rows), 10), -10.0)
    for index, (top, margin) in enumerate(rows):
        out[index, (top + 1) % 10] = -1.0
        out[index, top] = -1.0 + margin
    return out


def test_30_3_bf16_tokens_are_judged_where_the_reference_margin_is_clear():
    expected = _rows((5, 1.0), (2, 0.05), (3, 1.0), (4, 1.0))
    threshold = 2 * TOLERANCES["bfloat16"]
    # step 0 agrees; step 1 differs within a 0.05 margin (too close to call); step 2 is forced; step 3 differs
    differing, judged, close = judge_tokens(expected, [5, 9, 8, 7], [FREE, FREE, 8], threshold)
    assert (differing, judged, close) == (1, 2, 1)
    assert judge_tokens(expected, [5, 9, 8, 4], [FREE, FREE, 8], threshold) == (0, 2, 1)


def test_30_3_negative_control_within_tolerance_means_cannot_tell():
    tolerance = TOLERANCES["bfloat16"]
    assert verdict(0.0, 0.45, tolerance, True, 24, 8, 50) == (True, True)
    assert verdict(0.0, 0.05, tolerance, True, 24, 8, 50) == (False, False)  # agreement that proves nothing
    assert verdict(0.0, 0.45, tolerance, True, 24, 0, 50) == (False, True)  # nothing evicted while decoding
    assert verdict(0.2, 0.45, tolerance, True, 24, 8, 50) == (False, True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    model, tokenizer = load_model_and_tokenizer(
        random_model(CHECKPOINT, tmp_path_factory.mktemp("random"), seed=0), dtype="float32", device="cpu"
    )
    return model, tokenizer


STEPS = 16


def _runs(model, tokenizer, config, prompts, scripts):
    """What an exact engine returns: greedy decoding (scripted steps forced) and log-probs, masked with `config`
    (None: plain attention, the control)."""
    runs = []
    for prompt, script in zip(prompts, scripts, strict=True):
        sequence = list(prompt)
        for step in range(STEPS):
            greedy = step >= len(script)
            sequence.append(int(_logprobs(model, tokenizer, config, sequence)[-1].argmax()) if greedy else script[step])
        logprobs = _logprobs(model, tokenizer, config, sequence)
        scored = logprobs[:-1].gather(1, torch.tensor(sequence[1:])[:, None])[:, 0].tolist()
        runs.append((sequence[len(prompt) :], scored))
    return runs


def _logprobs(model, tokenizer, config, sequence):
    from memento.inference import MementoGenerator

    with torch.no_grad():
        if config is None:
            logits = model(torch.tensor([sequence])).logits[0]
        else:
            logits = MementoGenerator(model, tokenizer, config).score(sequence, chunk_size=16)
    return torch.log_softmax(logits.float(), -1)


def test_30_3_compare_agrees_with_an_exact_engine_and_the_unmasked_control_is_told_apart(reference):
    model, tokenizer = reference
    prompts, scripts = memento_prompts(tokenizer, 2, seed=0), decode_scripts(tokenizer, 2, seed=0)
    runs = [_runs(model, tokenizer, config, prompts, scripts) for config in CONFIGS]
    runs.append(_runs(model, tokenizer, None, prompts, scripts))
    agreement, control = compare(model, tokenizer, CONFIGS, prompts, scripts, runs, TOLERANCES["float32"])
    assert agreement.largest < 1e-4 and agreement.tokens_equal
    free = sum(STEPS - len(script) for script in scripts)
    assert agreement.tokens_compared + agreement.tokens_close == len(CONFIGS) * free
    assert agreement.decode_evictions == len(CONFIGS) * len(prompts)  # the scripted memento, once per sequence
    assert agreement.evictions == len(CONFIGS) * len(prompts) * 4
    assert min(control) > 10 * TOLERANCES["float32"]

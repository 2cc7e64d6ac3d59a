"""Sliding windows: one parser (`memento.kv.layer_windows`), read alike by generation and the KV simulator.

The parser is held against transformers itself (each model's own masks), and a Mistral-style
model (a window on every layer, no `layer_types`) is held against the simulator's accounting.
"""

from __future__ import annotations

import random

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    LlamaConfig,
    MistralConfig,
    Olmo3Config,
    Phi3Config,
    Qwen2Config,
    Qwen3Config,
)

from memento.attention import visibility_mask
from memento.config import MementoConfig
from memento.inference import MementoGenerator
from memento.kv import KVGeometry, layer_windows, simulate
from tests.models import IM_END, SPECIAL_IDS, VOCAB, dense_logits, memento_sequence

WINDOW = 5
TOLERANCE = 1e-4
_TINY = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": IM_END,
}

# (config, the per-layer windows transformers applies)
CONFIGS = {
    "mistral": (MistralConfig(**_TINY, sliding_window=WINDOW), (WINDOW,) * 4),
    "mistral-no-window": (MistralConfig(**_TINY, sliding_window=None), None),
    "phi3": (Phi3Config(**{k: v for k, v in _TINY.items() if k != "head_dim"}, sliding_window=WINDOW), (WINDOW,) * 4),
    "qwen3-off": (Qwen3Config(**_TINY, sliding_window=WINDOW), None),  # use_sliding_window defaults to False
    "qwen3": (
        Qwen3Config(**_TINY, use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1),
        (None, WINDOW, WINDOW, WINDOW),
    ),
    "qwen2": (
        Qwen2Config(**_TINY, use_sliding_window=True, sliding_window=WINDOW, max_window_layers=3),
        (None, None, None, WINDOW),
    ),
    "olmo3": (Olmo3Config(**_TINY, sliding_window=WINDOW), (WINDOW, WINDOW, WINDOW, None)),
    "gemma2": (Gemma2Config(**_TINY, sliding_window=WINDOW), (WINDOW, None, WINDOW, None)),
    "llama": (LlamaConfig(**_TINY), None),
}


def _model(config):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()


def _windowed(mask: torch.Tensor, window: int | None) -> torch.Tensor:
    positions = torch.arange(mask.shape[0])
    return mask if window is None else mask & (positions[None, :] > positions[:, None] - window)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_layer_windows_are_what_transformers_applies(name):
    config, expected = CONFIGS[name]
    assert layer_windows(config) == expected
    assert KVGeometry.from_config(config).sliding_windows == expected
    # transformers' own masks (attention_mask=None) == our causal masks windowed per layer
    model = _model(config)
    rng = random.Random(name)
    sequence = [rng.randrange(1, 50) for _ in range(16)]
    with torch.no_grad():
        own = model(input_ids=torch.tensor([sequence])).logits[0]
    causal = torch.ones(len(sequence), len(sequence), dtype=torch.bool).tril()
    windows = expected or (None,) * config.num_hidden_layers
    if len(set(windows)) == 1:
        ours = dense_logits(model, sequence, _windowed(causal, windows[0]))
    else:
        masks = {}
        for kind, window in zip(config.layer_types, windows, strict=True):
            allowed = _windowed(causal, window)
            masks[kind] = torch.zeros(1, 1, *allowed.shape).masked_fill_(~allowed, torch.finfo(torch.float32).min)
        with torch.no_grad():
            ours = model(input_ids=torch.tensor([sequence]), attention_mask=masks).logits[0]
    assert (own - ours).abs().max() < TOLERANCE
    if expected is not None:  # the window changes the result: the test can fail
        assert (own - dense_logits(model, sequence, causal)).abs().max() > 100 * TOLERANCE


def _attended_keys(model) -> tuple[list[list[int]], list]:
    """Per forward, per layer: the keys the last query may attend (zeros of the additive mask)."""
    steps: list[list[int]] = []

    def hook(module, args, kwargs):
        mask = kwargs["attention_mask"]
        if module.layer_idx == 0:
            steps.append([])
        steps[-1].append(int((mask[0, 0, -1] == 0).sum()))

    handles = [layer.self_attn.register_forward_pre_hook(hook, with_kwargs=True) for layer in model.model.layers]
    return steps, handles


@pytest.mark.parametrize(
    "config", [MementoConfig(mask_delimiters=False), MementoConfig(keep_last_n_blocks=1, mask_delimiters=True)], ids=str
)
def test_mistral_generation_attends_what_the_simulator_counts(config):
    model = _model(CONFIGS["mistral"][0])
    sequence = memento_sequence(random.Random(4), blocks=6)
    geometry = KVGeometry.from_config(model.config, bytes_per_element=4)
    generator = MementoGenerator(model, None, config, special_ids=SPECIAL_IDS)
    steps, handles = _attended_keys(model)
    try:
        scored = generator.score(sequence)
    finally:
        for handle in handles:
            handle.remove()
    rule = visibility_mask(sequence, SPECIAL_IDS, config)
    expected = [geometry.layer_tokens(rule[t].nonzero().flatten().tolist(), t) for t in range(len(sequence))]
    assert steps == expected
    report = simulate(sequence, SPECIAL_IDS, geometry, config)
    assert report.peak_bytes == max(sum(step) for step in steps) * geometry.bytes_per_token_per_layer
    # the window matters here (a full-attention count is larger), and logits are the windowed dense forward
    assert any(sum(step) < len(step) * int(rule[t].sum()) for t, step in enumerate(steps))
    reference = dense_logits(model, sequence, _windowed(rule, WINDOW))
    assert (scored - reference).abs().max() < TOLERANCE
    assert (scored - dense_logits(model, sequence, rule)).abs().max() > 100 * TOLERANCE

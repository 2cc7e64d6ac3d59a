"""Tiny transformers models built from configs, memento sequences, and the dense-mask reference."""

from __future__ import annotations

import random

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LogitsProcessor, Phi3Config, Qwen3Config

from memento.format import SpecialIds

VOCAB = 64
TEXT = range(0, 50)
BS, BE, SS, SE = 60, 61, 62, 63
THINK, END_THINK, IM_START, IM_END, ASSISTANT, USER = 50, 51, 52, 53, 54, 55
SPECIAL_IDS = SpecialIds(
    BS,
    BE,
    SS,
    SE,
    think_start=THINK,
    think_end=END_THINK,
    im_start=IM_START,
    im_end=IM_END,
    assistant_header=(IM_START, ASSISTANT),
)

_COMMON = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "pad_token_id": 0,
    "eos_token_id": IM_END,
    "bos_token_id": 1,
}


def tiny_config(family: str, **overrides):
    if family == "qwen3":
        return Qwen3Config(**_COMMON, head_dim=16, **overrides)
    if family == "llama":
        return LlamaConfig(**_COMMON, **overrides)
    if family == "phi3":
        return Phi3Config(**_COMMON, **overrides)
    raise ValueError(family)


def tiny_model(family: str = "qwen3", attn: str = "sdpa", seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_config(family, **overrides), attn_implementation=attn).eval()


def memento_sequence(rng: random.Random, *, blocks: int = 5, chat_prompt: bool = True) -> list[int]:
    """A ChatML prompt (holding memento markers that must be ignored), then blocks with mementos."""
    text = lambda n: [rng.choice(TEXT) for _ in range(n)]  # noqa: E731
    sequence = (
        [IM_START, USER, *text(3), BS, *text(2), BE, SS, *text(1), SE, IM_END, IM_START, ASSISTANT]
        if chat_prompt
        else text(4)
    )
    sequence.append(THINK)
    for _ in range(blocks):
        sequence += [BS, *text(rng.randint(1, 8)), BE, SS, *text(rng.randint(1, 3)), SE]
    return [*sequence, END_THINK, *text(3)]


def dense_logits(model, sequence: list[int], mask: torch.Tensor) -> torch.Tensor:
    """One full forward with a dense [L, L] bool mask (the reference), logits [L, vocab]."""
    additive = torch.zeros(1, 1, *mask.shape)
    additive.masked_fill_(~mask, torch.finfo(torch.float32).min)
    with torch.no_grad():
        output = model(
            input_ids=torch.tensor([sequence]), attention_mask=additive, position_ids=torch.arange(len(sequence))[None]
        )
    return output.logits[0]


class ScheduleProcessor(LogitsProcessor):
    """Forces memento structure on a per-row schedule and lets the model choose the text.

    A row's block length is 3 + (its first token % 5), so rows evict at different steps; the
    model's own argmax picks every text token, so attention (and eviction) shapes the output.
    """

    def __init__(self, memento_length: int = 2, with_block_end: bool = True) -> None:
        self.memento_length = memento_length
        self.with_block_end = with_block_end

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        forced = torch.full_like(scores, torch.finfo(scores.dtype).min)
        for row, ids in enumerate(input_ids.tolist()):
            block_length = 3 + ids[0] % 5
            last = {token: max((i for i, t in enumerate(ids) if t == token), default=-1) for token in (BS, BE, SS, SE)}
            position = len(ids)
            choice = None
            if last[BS] > max(last[BE], last[SE]) and self.with_block_end and position - last[BS] - 1 >= block_length:
                choice = BE
            elif last[BE] > max(last[BS], last[SS]) and last[BE] == position - 1:
                choice = SS
            elif last[SS] > last[SE] and position - last[SS] - 1 >= self.memento_length:
                choice = SE
            elif last[SE] == position - 1 or max(last.values()) < 0:
                choice = BS
            if choice is None:
                forced[row, list(TEXT)] = scores[row, list(TEXT)]
            else:
                forced[row, choice] = 0.0
        return forced


def save_checkpoint(
    directory, tokenizer, *, hidden_size: int = 32, layers: int = 2, heads: int = 2, kv_heads: int = 1, seed: int = 0
) -> None:
    """A tiny Qwen3 sized to `tokenizer`, saved with it as a local Hugging Face checkpoint."""
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=16,
    )
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)

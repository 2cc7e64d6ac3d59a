"""Per-token log-probabilities under the memento attention rule: what the RL policy forward computes.

The mask comes from the SFT path unchanged: `MementoCollator` turns each row into
`key_hidden_from` (padding keys seen only by themselves) and `memento_attention_mask` shapes it
for the model's attention implementation (dense bool for sdpa, additive for eager, a block-sparse
`BlockMask` for flex / ``memento_block_sparse``). A config that never evicts gives plain causal
attention with a padding mask. Position ids are logical: 0..n-1 along each row, never renumbered.
"""

from __future__ import annotations

from typing import Any

import torch

from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.training.collator import MementoCollator
from memento.training.trainer import memento_attention_mask


def _row_lengths(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> list[int]:
    """Real tokens per row; `attention_mask` must be right padding (ones, then zeros)."""
    batch, length = input_ids.shape
    if attention_mask is None:
        return [length] * batch
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must match input_ids {tuple(input_ids.shape)}")
    valid = attention_mask.bool()
    lengths = valid.sum(dim=1)
    expected = torch.arange(length, device=valid.device)[None, :] < lengths[:, None]
    if not torch.equal(valid, expected):
        raise ValueError("attention_mask must be right padding: each row's ones first, then zeros")
    if bool((lengths == 0).any()):
        raise ValueError("every row needs at least one token")
    return lengths.tolist()


def memento_inputs(
    model: Any,
    input_ids: torch.Tensor,
    special_ids: SpecialIds,
    config: MementoConfig,
    *,
    attention_mask: torch.Tensor | None = None,
    pad_token_id: int = 0,
) -> dict[str, Any]:
    """Model keyword arguments for one forward under the memento rule.

    Args:
        input_ids: LongTensor [B, L], right-padded.
        attention_mask: [B, L] ones then zeros, or None (no padding).

    Returns:
        ``input_ids`` [B, W], ``attention_mask`` (the memento mask, or [B, W] padding when `config`
        never evicts) and ``position_ids`` [B, W], on the model's device, where W <= L is the longest
        row (all-padding columns are dropped).
    """
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [batch, length], got shape {tuple(input_ids.shape)}")
    lengths = _row_lengths(input_ids, attention_mask)
    rows = [input_ids[b, :n].tolist() for b, n in enumerate(lengths)]
    collator = MementoCollator(special_ids, config if config.evicts else None, pad_token_id)
    batch = collator([{"input_ids": ids, "labels": ids} for ids in rows])
    device = next(model.parameters()).device
    if "hidden_from" in batch:
        mask = memento_attention_mask(model, batch["hidden_from"].to(device), "dense")
    else:
        mask = batch["attention_mask"].to(device)
    return {
        "input_ids": batch["input_ids"].to(device),
        "attention_mask": mask,
        "position_ids": batch["position_ids"].to(device),
    }


def token_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    special_ids: SpecialIds,
    config: MementoConfig,
    *,
    attention_mask: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Log-probability of every next token under the memento attention rule of `config`.

    Args:
        model: a transformers causal LM (any attention implementation the SFT trainer supports).
        input_ids: LongTensor [B, L], right-padded with the tokenizer's pad id.
        special_ids: the memento token ids of the model's vocabulary.
        config: memento options (``keep_last_n_blocks``, ``mask_delimiters``, ...); a config that
            never evicts gives plain causal log-probs. ``restart_mode`` is refused (two KV streams).
        attention_mask: [B, L] ones then zeros when padded.
        temperature: logits are divided by it (1 = the model's own distribution).

    Returns:
        FloatTensor [B, L-1] on the model's device; entry t is log p(token t+1 | tokens <= t), 0 where
        token t+1 is padding. Differentiable: call it under ``torch.no_grad()`` when only scoring.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    inputs = memento_inputs(model, input_ids, special_ids, config, attention_mask=attention_mask)
    logits = model(**inputs).logits[:, :-1].float() / temperature
    targets = inputs["input_ids"][:, 1:]
    picked = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None]).squeeze(-1)
    result = picked.new_zeros(input_ids.shape[0], input_ids.shape[1] - 1)
    result[:, : picked.shape[1]] = picked
    if attention_mask is not None:
        result = torch.where(attention_mask[:, 1:].to(result.device).bool(), result, 0.0)
    return result

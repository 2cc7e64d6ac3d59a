"""Add the four memento tokens to a model and tokenizer, with the paper's semantic initialisation."""

from __future__ import annotations

from typing import Any

import torch

from memento.format import MEMENTO_TOKENS
from memento.training.distributed import full_rows, gathered

SEED_WORDS: dict[str, tuple[str, ...]] = {
    "<|block_start|>": ("block", "start", "begin", "section", "step"),
    "<|block_end|>": ("block", "end", "finish", "section", "done"),
    "<|summary_start|>": ("summary", "summarize", "brief", "recap", "overview"),
    "<|summary_end|>": ("summary", "end", "finish", "done", "complete"),
}
"""Words whose mean embedding initialises each new token (paper, section 4)."""


def _word_pieces(tokenizer: Any, word: str) -> list[int] | None:
    """Token ids of `word`, or None when the vocabulary lacks it (an unknown piece, or nothing)."""
    pieces = list(tokenizer.encode(word, add_special_tokens=False))
    unknown = getattr(tokenizer, "unk_token_id", None)
    if not pieces or (unknown is not None and unknown in pieces):
        return None
    return pieces


def seed_rows(tokenizer: Any, weight: torch.Tensor, words: tuple[str, ...]) -> torch.Tensor:
    """Mean over `words` of each word's mean piece row of `weight` [vocab, hidden] -> [hidden]."""
    means = []
    for word in words:
        pieces = _word_pieces(tokenizer, word)
        if pieces is not None:
            means.append(weight[pieces].float().mean(dim=0))
    if not means:
        raise ValueError(f"none of the seed words {list(words)} is in the tokenizer's vocabulary")
    return torch.stack(means).mean(dim=0)


def add_memento_tokens(model: Any, tokenizer: Any, *, noise_std: float = 0.01, seed: int = 0) -> list[int]:
    """Add the memento tokens as special tokens, resize the embeddings and initialise the new rows.

    Each new input-embedding row (and output row when the head is not tied) becomes the mean
    embedding of its seed words plus N(0, noise_std^2) noise. Tokens the tokenizer already has,
    with embedding rows to match, are left as they are: calling this twice changes nothing.

    Returns:
        The four ids, in the order block_start, block_end, summary_start, summary_end.
    """
    vocabulary = tokenizer.get_vocab()
    missing = [token for token in MEMENTO_TOKENS if token not in vocabulary]
    input_embeddings = model.get_input_embeddings()
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    ids = [int(tokenizer.convert_tokens_to_ids(token)) for token in MEMENTO_TOKENS]
    rows_before = full_rows(input_embeddings.weight)
    if not missing and max(ids) < rows_before:
        return ids
    if max(ids) >= rows_before:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    new_tokens = [token for token in MEMENTO_TOKENS if token in missing or vocabulary.get(token, -1) >= rows_before]
    generator = torch.Generator().manual_seed(seed)
    output_embeddings = model.get_output_embeddings()
    tied = output_embeddings is None or output_embeddings.weight is model.get_input_embeddings().weight
    matrices = [model.get_input_embeddings().weight] + ([] if tied else [output_embeddings.weight])
    with gathered(matrices), torch.no_grad():
        for matrix in matrices:
            reference = matrix.detach().clone()
            for token in new_tokens:
                row = seed_rows(tokenizer, reference, SEED_WORDS[token])
                noise = torch.randn(row.shape, generator=generator) * noise_std
                matrix[tokenizer.convert_tokens_to_ids(token)] = (row + noise).to(matrix.dtype)
    return ids

"""The collator's masks follow the one rule; training loss equals inference loss."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import create_mask

from memento.attention import visibility_mask
from memento.config import MementoConfig
from memento.inference import MementoGenerator
from memento.training.collator import MementoCollator
from memento.training.masks import additive_mask, block_sparse_mask, dense_mask
from tests.models import SPECIAL_IDS, memento_sequence, tiny_model


def _batch(config, lengths_seed=0):
    rng = random.Random(lengths_seed)
    sequences = [memento_sequence(rng, blocks=n) for n in (2, 6, 4)]
    features = [{"input_ids": s, "labels": s} for s in sequences]
    return sequences, MementoCollator(SPECIAL_IDS, config, pad_token_id=0)(features)


@pytest.mark.parametrize(
    "config",
    [
        MementoConfig(mask_delimiters=False),
        MementoConfig(mask_delimiters=True),
        MementoConfig(mask_delimiters=False, keep_last_n_blocks=1),
    ],
    ids=str,
)
def test_collator_mask_equals_visibility_mask_for_every_example(config):
    sequences, batch = _batch(config)
    length = max(map(len, sequences))
    assert batch["input_ids"].shape == batch["hidden_from"].shape == (3, length)
    masks = dense_mask(batch["hidden_from"])[:, 0]
    for row, sequence in enumerate(sequences):
        size = len(sequence)
        assert torch.equal(masks[row, :size, :size], visibility_mask(sequence, SPECIAL_IDS, config))
        assert not masks[row, :size, size:].any()  # real tokens never see padding
        assert (batch["labels"][row, size:] == -100).all()
    block = block_sparse_mask(batch["hidden_from"], block_size=16)
    assert torch.equal(
        create_mask(block.mask_mod, 3, 1, length, length, device="cpu"), dense_mask(batch["hidden_from"])
    )
    additive = additive_mask(batch["hidden_from"], torch.float32)
    assert torch.equal(additive == 0, dense_mask(batch["hidden_from"]))


def test_stage_one_is_plain_causal_with_padding():
    sequences, batch = _batch(None)
    assert "hidden_from" not in batch
    assert batch["attention_mask"].sum(1).tolist() == [len(s) for s in sequences]


def test_full_attention_fraction_mixes_plain_causal_examples_reproducibly():
    config = MementoConfig(mask_delimiters=False)
    rng = random.Random(5)
    sequences = [memento_sequence(rng, blocks=3) for _ in range(40)]
    features = [{"input_ids": s, "labels": s} for s in sequences]

    def plain_rows(seed):
        batch = MementoCollator(SPECIAL_IDS, config, 0, full_attention_fraction=0.5, seed=seed)(features)
        masks = dense_mask(batch["hidden_from"])[:, 0]
        plain = []
        for row, sequence in enumerate(sequences):
            size = len(sequence)
            causal = torch.ones(size, size, dtype=torch.bool).tril()
            if torch.equal(masks[row, :size, :size], causal):
                plain.append(row)
            else:  # the others keep the exact memento mask
                assert torch.equal(masks[row, :size, :size], visibility_mask(sequence, SPECIAL_IDS, config))
        return plain

    assert 8 <= len(plain_rows(0)) <= 32 and plain_rows(0) == plain_rows(0) != plain_rows(1)
    with pytest.raises(ValueError, match="full_attention_fraction"):
        MementoCollator(SPECIAL_IDS, config, 0, full_attention_fraction=1.5)


def test_full_attention_draws_follow_the_example_not_its_batch_or_process():
    """The plain-vs-memento choice is a function of (seed, epoch, dataset index): one batch of 12, two
    processes' halves (rank 0 takes even positions, rank 1 odd) or a reversed order give each example
    the same mask, so N processes train what one process does at the same global batch."""
    config = MementoConfig(mask_delimiters=False)
    rng = random.Random(7)
    features = [
        {"input_ids": s, "labels": s, "index": 100 + i} for i, s in enumerate(memento_sequence(rng) for _ in range(12))
    ]
    collator = MementoCollator(SPECIAL_IDS, config, 0, full_attention_fraction=0.5, seed=3)

    def masks(batch_features):  # example index -> its [size, size] mask
        dense = dense_mask(collator(batch_features)["hidden_from"])[:, 0]
        return {
            f["index"]: dense[row, : len(f["input_ids"]), : len(f["input_ids"])] for row, f in enumerate(batch_features)
        }

    whole = masks(features)
    split = {**masks(features[0::2]), **masks(features[1::2])}
    reversed_order = masks(features[::-1])
    for index, mask in whole.items():
        assert torch.equal(split[index], mask) and torch.equal(reversed_order[index], mask)
    plain = {index for index, mask in whole.items() if torch.equal(mask, torch.ones_like(mask).tril())}
    assert plain == {f["index"] for f in features if collator.plain(f["index"])} and 2 <= len(plain) <= 10
    collator.epoch = 1  # a new epoch draws anew
    assert {f["index"] for f in features if collator.plain(f["index"])} != plain


def test_training_loss_equals_inference_loss():
    config = MementoConfig(mask_delimiters=False)
    model = tiny_model("qwen3", "sdpa")
    sequences, batch = _batch(config, lengths_seed=3)
    with torch.no_grad():
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=dense_mask(batch["hidden_from"]),
            position_ids=batch["position_ids"],
        ).logits
    generator = MementoGenerator(model, None, config, special_ids=SPECIAL_IDS)
    for row, sequence in enumerate(sequences):
        targets = torch.tensor(sequence[1:])
        train_loss = F.cross_entropy(logits[row, : len(sequence) - 1], targets, reduction="none")
        inference_loss = F.cross_entropy(generator.score(sequence)[:-1], targets, reduction="none")
        assert (train_loss - inference_loss).abs().max() < 1e-4
    # and the model's own loss (what the Trainer optimises) is their mean over labelled tokens
    with torch.no_grad():
        loss = model(
            **{k: v for k, v in batch.items() if k != "hidden_from"}, attention_mask=dense_mask(batch["hidden_from"])
        ).loss
    per_token = torch.cat(
        [F.cross_entropy(generator.score(s)[:-1], torch.tensor(s[1:]), reduction="none") for s in sequences]
    )
    assert loss.item() == pytest.approx(per_token.mean().item(), abs=1e-4)


def test_block_sparse_attention_matches_dense_forward_and_backward():
    import copy

    from memento.attention import key_hidden_from
    from memento.training.sparse_attention import register

    config = MementoConfig(mask_delimiters=False)
    sequences = [memento_sequence(random.Random(seed), blocks=12) for seed in (0, 1)]
    length = max(map(len, sequences))
    hidden_from = torch.arange(1, length + 1).repeat(2, 1)
    input_ids = torch.zeros(2, length, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.tensor(sequence)
        hidden_from[row, : len(sequence)] = key_hidden_from(sequence, SPECIAL_IDS, config).clamp(max=length)
    dense_model = tiny_model("qwen3", "sdpa")
    sparse_model = copy.deepcopy(dense_model)
    sparse_model.set_attn_implementation(register())
    losses, grads = [], []
    for model, mask in ((dense_model, dense_mask(hidden_from)), (sparse_model, block_sparse_mask(hidden_from, 16))):
        output = model(
            input_ids=input_ids,
            attention_mask=mask,
            labels=input_ids,
            position_ids=torch.arange(length).expand(2, length),
        )
        output.loss.backward()
        losses.append(output.loss.detach())
        grads.append(model.model.layers[0].self_attn.q_proj.weight.grad.clone())
    assert (losses[0] - losses[1]).abs() < 1e-5
    assert (grads[0] - grads[1]).abs().max() < 1e-5
    assert block_sparse_mask(hidden_from, 16).sparsity() > 30  # most tiles skipped

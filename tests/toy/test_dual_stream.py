"""The dual-stream bench's pieces on the embedded toy model (its tokenizer covers the key task)."""

from __future__ import annotations

import pytest
import torch

from memento.attention import analyze
from memento.config import MementoConfig
from memento.format import SpecialIds, render_chat
from memento.inference import MementoGenerator
from memento.inference.loading import load_model_and_tokenizer
from memento.toy import CHECKPOINT
from memento.toy.dual_stream import (
    first_memento,
    key_probabilities,
    memento_states,
    probe_accuracy,
    reference_states,
    solve,
)
from memento.toy.key_task import KEYS, KeyTask

EVICT = MementoConfig(mask_delimiters=False, keep_last_n_blocks=0)
RESTART = MementoConfig(mask_delimiters=False, keep_last_n_blocks=0, restart_mode=True)


@pytest.fixture(scope="module")
def toy():
    return load_model_and_tokenizer(CHECKPOINT, dtype="float32", device="cpu")


def _ids(tokenizer, task: KeyTask, problem: list[int]) -> list[int]:
    return tokenizer.encode(render_chat(task.trace(problem)), add_special_tokens=False)


@pytest.mark.parametrize("config", [EVICT, RESTART], ids=["memento", "restart"])
def test_dense_states_are_what_the_evicting_cache_computes(toy, config):
    """The probe's teacher-forced forward agrees with incremental decoding through the evicting cache.

    In restart mode `score` returns each memento's first-pass logits (block visible) and only then
    recomputes its KV: every other position must match, and those after block 1 see only the recomputed KV.
    """
    model, tokenizer = toy
    task = KeyTask()
    ids = _ids(tokenizer, task, task.examples(1, seed=4)[0][0])
    special_ids = SpecialIds.from_tokenizer(tokenizer, config)
    _, dense = memento_states(model, ids, special_ids, config)
    incremental = MementoGenerator(model, tokenizer, config).score(ids, chunk_size=8)
    span = first_memento(ids, special_ids, config)
    compared = torch.ones(len(ids), dtype=torch.bool)
    if config.restart_mode:
        for block in analyze(ids, special_ids, config).blocks:
            if block.summary_start is not None and block.summary_end is not None:
                compared[block.summary_start : block.summary_end + 1] = False
    assert span.stop < len(ids) and compared[span.stop :].any()
    torch.testing.assert_close(dense[compared], incremental[compared], atol=2e-4, rtol=1e-4)


def test_block_1s_memento_sees_the_key_with_eviction_and_not_in_restart(toy):
    """Two problems differing only in the key: the memento's first layer reads it only with eviction.

    Deeper restart states may differ: the newline between ``<|block_end|>`` and ``<|summary_start|>``
    keeps the KV it computed with the block visible (see `memento.toy.key_task`).
    """
    model, tokenizer = toy
    task = KeyTask()
    problem = task.examples(1, seed=6)[0][0]
    pair = [[*task.numbers(problem), 2], [*task.numbers(problem), 7]]
    restart = reference_states(model, tokenizer, task, pair, RESTART)
    evict = reference_states(model, tokenizer, task, pair, EVICT)
    assert restart.shape == evict.shape == (2, model.config.num_hidden_layers + 1, model.config.hidden_size)
    torch.testing.assert_close(restart[0, :2], restart[1, :2], rtol=0, atol=0)
    torch.testing.assert_close(evict[0, 0], evict[1, 0], rtol=0, atol=0)  # embeddings: the memento's own tokens
    assert (evict[0, 1:] - evict[1, 1:]).abs().amax(dim=1).min() > 1e-3  # every layer's memento saw the key


def test_probe_reads_a_linear_signal_and_not_noise():
    generator = torch.Generator().manual_seed(0)
    keys = torch.randint(0, KEYS, (600,), generator=generator)
    noise = torch.randn(600, 32, generator=generator)
    signal = noise.clone()
    signal[:, :KEYS] += 4 * torch.nn.functional.one_hot(keys, KEYS)
    readable = probe_accuracy(signal[:400], keys[:400], signal[400:], keys[400:])
    unreadable = probe_accuracy(noise[:400], keys[:400], noise[400:], keys[400:])
    assert len(readable) == len(unreadable) == 200
    assert sum(readable) / 200 > 0.9
    assert sum(unreadable) / 200 < 0.25


def test_solve_continues_from_the_forced_key(toy):
    model, tokenizer = toy
    task = KeyTask()
    problems = [p for p, _ in task.examples(2, seed=8)]
    solved = solve(model, tokenizer, task, problems, EVICT, batch_size=2, max_new_tokens=30)
    assert len(solved) == 2
    for outcome in solved:
        # the continuation alone (not the prefill); 30 tokens end before any answer
        assert len(tokenizer.encode(outcome.text, add_special_tokens=False)) == 30
        assert "sum mod" not in outcome.text and not outcome.correct
        assert not outcome.key_recalled and not outcome.last_note_carried


def test_key_probabilities_read_the_next_token_distribution_at_every_note(toy):
    """One row per problem, one column per ``z:`` note (each block's, then the answer's), each the
    probability the evicting cache's own logits give the right key there."""
    model, tokenizer = toy
    task = KeyTask()
    problems = [p for p, _ in task.examples(3, seed=11)]
    probabilities = key_probabilities(model, tokenizer, task, problems, EVICT)
    blocks = len(task.trace(problems[0]).blocks)
    assert probabilities.shape == (3, blocks + 1)
    ids = _ids(tokenizer, task, problems[0])
    logits = MementoGenerator(model, tokenizer, EVICT).score(ids, chunk_size=8)
    key_positions = [i for i, token in enumerate(tokenizer.convert_ids_to_tokens(ids)) if token == ":" and i > 0]
    key_positions = [i + 1 for i in key_positions if tokenizer.convert_ids_to_tokens(ids[i - 1]) == "z"]
    key = tokenizer.convert_tokens_to_ids(str(task.key(problems[0])))
    expected = torch.stack([logits[i - 1].softmax(dim=-1)[key] for i in key_positions])
    torch.testing.assert_close(probabilities[0], expected, atol=1e-4, rtol=1e-4)

"""The dual-stream experiment's pieces on the key task (`memento.toy.key_task`); `bench/dual_stream.py` runs them.

* `solve`: held-out problems generated with the key forced (`KeyTask.prefill`), under one memento
  config; per problem, whether the final answer and the key the answer uses are right.
* `memento_states`: teacher-forced hidden states at block 1's memento under one config's dense
  mask (`memento.attention.visibility_mask`, whose restart_mode rows are the recomputed mementos).
* `probe_accuracy`: a linear probe (multinomial logistic regression) that reads the key digit from
  those states, fitted on some problems and scored on others.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from memento.attention import analyze, visibility_mask
from memento.config import MementoConfig
from memento.format import SpecialIds, render_chat
from memento.inference import MementoGenerator
from memento.inference.masks import to_additive
from memento.toy.key_task import KEY_LABEL, KEYS, KeyTask

_ANSWER_KEY = re.compile(rf"</think>\s*{KEY_LABEL}:(\d+) ")
"""The key as the answer restates it: ``</think> z:5 8+5=13 ...``."""


_NOTE = re.compile(rf"{KEY_LABEL}:(\d+)")


@dataclass
class Solved:
    """One problem's outcome.

    `correct`: the final answer; `key_recalled`: the answer restates the forced key;
    `answer_key`: the key the answer restates; `last_note`: the key
    the model itself noted at the end of its last block (evicted before the answer with eviction,
    so the answer can only get it through that block's KV); None where missing.
    """

    correct: bool
    key_recalled: bool
    answer_key: int | None
    last_note: int | None
    text: str

    @property
    def last_note_carried(self) -> bool:
        return self.answer_key is not None and self.answer_key == self.last_note


def solve(
    model: Any,
    tokenizer: Any,
    task: KeyTask,
    problems: Sequence[list[int]],
    config: MementoConfig,
    *,
    batch_size: int = 100,
    max_new_tokens: int = 600,
) -> list[Solved]:
    """Greedy generation from each problem's prefill (prompt, ``<think>``, block 1's ``key K.``)."""
    generator = MementoGenerator(model, tokenizer, config)
    prompts = [tokenizer.encode(task.prefill(p), add_special_tokens=False) for p in problems]
    results = []
    for offset in range(0, len(prompts), batch_size):
        results += generator.generate(prompts[offset : offset + batch_size], max_new_tokens=max_new_tokens)
    solved = []
    for problem, result in zip(problems, results, strict=True):
        key = _ANSWER_KEY.search(result.text)
        answer_key = int(key.group(1)) if key is not None else None
        notes = _NOTE.findall(result.text.split("</think>", 1)[0])
        solved.append(
            Solved(
                correct=task.parse_answer(result.text) == task.answer(problem),
                key_recalled=answer_key == task.key(problem),
                answer_key=answer_key,
                last_note=int(notes[-1]) if notes else None,
                text=result.text,
            )
        )
    return solved


def first_memento(token_ids: Sequence[int], special_ids: SpecialIds, config: MementoConfig) -> range:
    """Positions of block 1's memento, ``<|summary_start|>`` .. ``<|summary_end|>`` inclusive."""
    layout = analyze(token_ids, special_ids, config)
    first = min(
        (b for b in layout.blocks if b.start >= layout.assistant_start and b.summary_end is not None),
        key=lambda b: b.start,
    )
    assert first.summary_start is not None and first.summary_end is not None
    return range(first.summary_start, first.summary_end + 1)


def memento_states(
    model: Any, token_ids: Sequence[int], special_ids: SpecialIds, config: MementoConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """One teacher-forced forward under `config`'s dense mask.

    Returns:
        (features [layers + 1, hidden]: every hidden state (embeddings first) mean-pooled over block
        1's memento; logits [L, vocab]).
    """
    ids = list(token_ids)
    allowed = visibility_mask(ids, special_ids, config)[None].to(model.device)
    with torch.no_grad():
        output = model(
            input_ids=torch.tensor([ids], device=model.device),
            attention_mask=to_additive(allowed, model.dtype),
            position_ids=torch.arange(len(ids), device=model.device)[None],
            output_hidden_states=True,
        )
    span = first_memento(ids, special_ids, config)
    features = torch.stack([h[0, span.start : span.stop].mean(dim=0) for h in output.hidden_states])
    return features.float().cpu(), output.logits[0].float().cpu()


def key_probabilities(
    model: Any, tokenizer: Any, task: KeyTask, problems: Sequence[list[int]], config: MementoConfig
) -> torch.Tensor:
    """Teacher-forced probability of the right key at each ``z:`` note of the reference trace under `config`.

    Returns [problems, notes]: block 1's note (random: 1/KEYS at best), each later block's, the answer's.
    """
    special_ids = SpecialIds.from_tokenizer(tokenizer, config)
    note = tokenizer.encode(f" {KEY_LABEL}:", add_special_tokens=False)[-2:]  # the label and the colon
    rows = []
    for problem in problems:
        ids = tokenizer.encode(render_chat(task.trace(problem)), add_special_tokens=False)
        logits = memento_states(model, ids, special_ids, config)[1]
        key_id = tokenizer.convert_tokens_to_ids(str(task.key(problem)))
        positions = [i for i in range(2, len(ids)) if ids[i - 2 : i] == note]
        rows.append(torch.stack([logits[i - 1].softmax(dim=-1)[key_id] for i in positions]))
    return torch.stack(rows)


def reference_states(
    model: Any, tokenizer: Any, task: KeyTask, problems: Sequence[list[int]], config: MementoConfig
) -> torch.Tensor:
    """`memento_states` features of each problem's reference trace: [problems, layers + 1, hidden]."""
    special_ids = SpecialIds.from_tokenizer(tokenizer, config)
    features = []
    for problem in problems:
        ids = tokenizer.encode(render_chat(task.trace(problem)), add_special_tokens=False)
        features.append(memento_states(model, ids, special_ids, config)[0])
    return torch.stack(features)


def probe_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    weight_decay: float = 1e-2,
    steps: int = 300,
) -> list[bool]:
    """Fit a multinomial logistic regression on standardised features; per test problem, whether it reads the key.

    Args:
        train_x, test_x: [n, features]; train_y, test_y: [n] key digits in 0..KEYS-1.
    """
    mean, std = train_x.mean(dim=0), train_x.std(dim=0).clamp(min=1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    generator = torch.Generator().manual_seed(0)
    probe = torch.nn.Linear(train_x.shape[1], KEYS)
    torch.nn.init.normal_(probe.weight, std=0.01, generator=generator)
    torch.nn.init.zeros_(probe.bias)
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(probe(train_x), train_y) + weight_decay * probe.weight.square().sum()
        value.backward()
        return value

    optimizer.step(loss)
    with torch.no_grad():
        return (probe(test_x).argmax(dim=1) == test_y).tolist()

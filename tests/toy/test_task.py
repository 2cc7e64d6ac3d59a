from __future__ import annotations

import statistics

import pytest

from memento.format import parse_text, render_chat
from memento.toy.task import LABELS, ToyTask, parse_answer
from memento.toy.tokenizer import build_toy_tokenizer


def test_traces_solve_the_problem_and_parse():
    task = ToyTask()
    for numbers, trace in task.examples(50, seed=3):
        assert trace.answer == str(sum(numbers) % 10)
        assert parse_text(render_chat(trace)) == trace
        assert trace.blocks[-1].memento == f"{LABELS[len(numbers) - 1]}={trace.answer}"
        assert parse_answer(f"</think>\n\n{trace.answer}<|im_end|>") == int(trace.answer)


def test_the_task_is_a_real_test_of_the_method():
    tokenizer = build_toy_tokenizer()
    examples = ToyTask().examples(200, seed=1)
    blocks = [len(trace.blocks) for _, trace in examples]
    ratios = [
        len(tokenizer.encode(b.reasoning)) / len(tokenizer.encode(b.memento))
        for _, trace in examples
        for b in trace.blocks
    ]
    assert statistics.mean(blocks) >= 4
    assert min(ratios) >= 4 and statistics.mean(ratios) > 10


@pytest.mark.parametrize("task", [ToyTask(steps=7, digits=2, steps_per_block=2), ToyTask(steps=3, steps_per_block=5)])
def test_knobs(task):
    numbers, trace = task.examples(1, seed=7)[0]
    assert len(numbers) == task.steps and all(0 <= n < task.modulus for n in numbers)
    assert len(trace.blocks) == -(-task.steps // task.steps_per_block)
    assert trace.answer == str(sum(numbers) % task.modulus)
    with pytest.raises(ValueError):
        ToyTask(steps=0)


def test_tokenizer_round_trips_from_pretrained(tmp_path):
    from transformers import AutoTokenizer

    from memento.format import SpecialIds, split_on_markers

    build_toy_tokenizer().save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    _, trace = ToyTask().examples(1, seed=0)[0]
    text = render_chat(trace)
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    # one token per marker and per character
    assert len(ids) == sum(1 if is_marker else len(piece) for piece, is_marker in split_on_markers(text))
    special = SpecialIds.from_tokenizer(tokenizer)
    assert special.assistant_header is not None and special.think_end is not None
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"

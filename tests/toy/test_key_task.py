from __future__ import annotations

from collections import defaultdict

import pytest

from memento.cli import build_parser, main
from memento.format import parse_text, render_chat
from memento.toy.key_task import KEYS, KeyTask
from memento.toy.task import ToyTask
from memento.toy.tasks import TASKS, task_by_name


def test_traces_are_well_formed_and_the_key_is_only_in_blocks():
    task = KeyTask()
    for problem, trace in task.examples(200, seed=3):
        numbers, key = task.numbers(problem), task.key(problem)
        assert len(numbers) == task.steps and 0 <= key < KEYS
        assert parse_text(render_chat(trace)) == trace
        assert trace.blocks[0].reasoning.startswith(f"a:{numbers[0]} ")
        assert all(b.reasoning.endswith(f", state {b.memento[-1]}. z:{key}") for b in trace.blocks)
        assert "z" not in trace.prompt and not any("z" in b.memento for b in trace.blocks)
        assert [b.memento for b in trace.blocks] == task.mementos(problem)
        assert task.answer(problem) == (sum(numbers) + key) % 10
        assert task.parse_answer(render_chat(trace)) == task.answer(problem)


def test_the_mementos_are_the_sum_tasks_and_do_not_determine_the_key():
    task = KeyTask()
    numbers = task.numbers(task.examples(1, seed=5)[0][0])
    sum_mementos = [b.memento for b in ToyTask(steps=task.steps).trace(numbers).blocks]
    variants = [[*numbers, key] for key in range(KEYS)]
    assert all(task.mementos(p) == sum_mementos for p in variants)
    assert len({task.answer(p) for p in variants}) == KEYS  # the same mementos, every answer possible
    # and over sampled problems: problems sharing a memento sequence have different keys
    keys_by_mementos = defaultdict(set)
    for problem, trace in task.examples(3000, seed=9):
        keys_by_mementos[tuple(b.memento for b in trace.blocks)].add(task.key(problem))
    shared = [keys for keys in keys_by_mementos.values() if len(keys) > 1]
    assert len(keys_by_mementos) >= 50 and len(shared) > 0.9 * len(keys_by_mementos)
    assert max(len(keys) for keys in shared) >= 5


def test_prefill_stops_right_after_block_1s_key():
    task = KeyTask()
    problem, trace = task.examples(1, seed=2)[0]
    prefill = task.prefill(problem)
    assert render_chat(trace).startswith(prefill)
    assert prefill.endswith(f"<|block_start|>{trace.blocks[0].reasoning}")
    assert prefill.endswith(f" z:{task.key(problem)}")
    assert prefill.count("z:") == 1 and "<|block_end|>" not in prefill


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("</think>\n\nz:5 8+5=13 13-10=3, answer 3<|im_end|>", 3),
        ("</think>\n\n8+5=13 13-10=3, answer <|im_end|>", None),
        ("8+5=13 13-10=3, answer 3", None),
        ("</think>\n\n3", None),
    ],
)
def test_parse_answer(text, expected):
    assert KeyTask().parse_answer(text) == expected


def test_tasks_by_name():
    assert set(TASKS) == {"sum", "key"}
    assert isinstance(task_by_name("key"), KeyTask) and type(task_by_name("sum")) is ToyTask
    with pytest.raises(ValueError, match="the last label, 'z', names the key"):
        KeyTask(steps=26)
    with pytest.raises(ValueError, match="unknown toy task 'nope'; choose from sum, key"):
        task_by_name("nope")


def test_toy_train_parses_task_and_init_from():
    parser = build_parser(["toy"])
    args = parser.parse_args(["toy", "train", "--task", "key", "--init-from", "some/dir"])
    assert args.task == "key" and str(args.init_from) == "some/dir"
    assert parser.parse_args(["toy", "train"]).task == "sum"


def _one_line_error(capsys, argv: list[str]) -> str:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_toy_train_rejects_bad_input_in_one_line(capsys, tmp_path):
    assert "invalid choice: 'nope'" in _one_line_error(capsys, ["toy", "train", "--task", "nope"])
    err = _one_line_error(capsys, ["toy", "train", "--task", "key", "--install", "--output", str(tmp_path)])
    assert "--install replaces the embedded 'sum' model" in err
    missing = tmp_path / "missing"
    err = _one_line_error(
        capsys, ["toy", "train", "--task", "key", "--init-from", str(missing), "--output", str(tmp_path)]
    )
    assert f"--init-from {missing}" in err

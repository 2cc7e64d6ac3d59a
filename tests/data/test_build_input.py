"""`memento data build` on the input files users really have (issue 24, items 2, 3 and 5).

Ids that are numbers or booleans are kept and compared as given and the folder always resumes; an
id used twice is refused at start naming both lines; an empty chain of thought is a failure with
its reason, never a record of 0 blocks. Real files, the real command line, the offline pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memento.cli import main
from memento.prompted.problems import ProblemSourceError, read_problem_file
from tests.cli.test_bad_input import refused
from tests.data.test_build import _cot


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _build(data: Path, out: Path) -> list[str]:
    return ["data", "build", "--input", str(data), "--output-dir", str(out), "--offline", "--min-block-tokens", "30"]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


IDS = [1, "1", 2.5, True, 10**20, "t one"]  # 1 and "1" are two traces; a string may hold a space


def test_ids_of_any_json_scalar_are_kept_as_given_and_the_folder_resumes(tmp_path, capsys):
    rows = [{"task_id": task_id, "problem": "p", "domain": "math", "cot": _cot(i + 1)} for i, task_id in enumerate(IDS)]
    data, out = _write(tmp_path / "in.jsonl", rows), tmp_path / "out"
    assert main([*_build(_write(tmp_path / "first.jsonl", rows[:3]), out)]) == 0  # an interrupted run, as it were
    assert main(_build(data, out)) == 0
    assert "3 traces processed; 3 already done" in capsys.readouterr().out
    records = _lines(out / "records.jsonl")
    assert [r["task_id"] for r in records] == IDS and [type(r["task_id"]) for r in records] == [type(i) for i in IDS]
    assert all(len(r["blocks"]) >= 2 for r in records)
    finished = (out / "finished_ids.txt").read_text().splitlines()
    assert finished == ["1", '"1"', "2.5", "true", str(10**20), "t one"]
    assert main(_build(data, out)) == 0  # and again: nothing to do, nothing written twice
    assert "0 traces processed; 6 already done" in capsys.readouterr().out
    assert len(_lines(out / "records.jsonl")) == 6 and len((out / "finished_ids.txt").read_text().splitlines()) == 6


def test_a_failed_trace_with_a_number_id_is_retried_on_resume(tmp_path, capsys):
    rows = [{"task_id": 7, "cot": "<think></think>42"}, {"task_id": 8, "cot": _cot(2)}]
    data, out = _write(tmp_path / "in.jsonl", rows), tmp_path / "out"
    assert main(_build(data, out)) == 1
    assert main(_build(data, out)) == 1
    assert "1 traces processed, 1 of them failed before and were retried; 1 already done" in capsys.readouterr().out
    assert [f["task_id"] for f in _lines(out / "failures.jsonl")] == [7, 7]
    assert [r["task_id"] for r in _lines(out / "records.jsonl")] == [8]


@pytest.mark.parametrize(
    ("task_id", "expected"), [(None, "got null"), ({"a": 1}, "got a JSON object"), ([1], "got a JSON array")]
)
def test_an_id_that_is_not_a_scalar_is_refused_naming_the_line(tmp_path, capsys, task_id, expected):
    data = _write(tmp_path / "in.jsonl", [{"task_id": "a", "cot": _cot(1)}, {"task_id": task_id, "cot": _cot(2)}])
    line = refused(capsys, _build(data, tmp_path / "out"), f"{data}:2: field 'task_id': expected a string or a number")
    assert line.endswith(expected)
    assert not (tmp_path / "out").exists()


def test_an_id_used_twice_is_refused_at_start_naming_both_lines(tmp_path, capsys):
    rows = [{"task_id": t, "cot": _cot(i + 1)} for i, t in enumerate(["a", "b", 3, "c", "a"])]
    data = _write(tmp_path / "in.jsonl", rows)
    refused(capsys, _build(data, tmp_path / "out"), f"{data}:5: field 'task_id': 'a' is already the id of line 1")
    assert not (tmp_path / "out").exists()  # refused before anything is written
    rows[4]["task_id"] = 3  # numbers too, compared as given: 3 and "3" would be two ids
    refused(capsys, _build(_write(data, rows), tmp_path / "out"), f"{data}:5: field 'task_id': 3 is already the id")
    # a line without an id is named after its line number: an explicit id of that name is a repeat
    _write(data, [{"task_id": "line-2", "cot": _cot(1)}, {"cot": _cot(2)}])
    refused(capsys, _build(data, tmp_path / "out"), f"{data}:2: field 'task_id': 'line-2' is already the id of line 1")


def test_prompted_problem_files_name_both_lines_of_a_repeated_id(tmp_path):
    path = _write(
        tmp_path / "p.jsonl", [{"id": 1, "problem": "x"}, {"id": 2, "problem": "y"}, {"id": "1", "problem": "z"}]
    )
    with pytest.raises(ProblemSourceError, match=r"p\.jsonl:3: field 'id': '1' is already the id of line 1"):
        read_problem_file(path)


@pytest.mark.parametrize("cot", ["", "<think></think>The answer is 4.", "<think> \n </think>4", "   "])
def test_an_empty_chain_of_thought_is_a_failure_never_a_record(tmp_path, capsys, cot):
    data = _write(tmp_path / "in.jsonl", [{"task_id": "empty", "cot": cot}, {"task_id": "full", "cot": _cot(1)}])
    out = tmp_path / "out"
    assert main(_build(data, out)) == 1  # a trace without a record is never a silent success
    printed = capsys.readouterr().out
    assert "first failure: empty: ValueError: empty chain of thought" in printed
    assert [r["task_id"] for r in _lines(out / "records.jsonl")] == ["full"]
    assert all(r["blocks"] and all(r["blocks"]) for r in _lines(out / "records.jsonl"))
    (failure,) = _lines(out / "failures.jsonl")
    assert failure["task_id"] == "empty" and "no text before </think>" in failure["reason"]


def test_the_authors_memento_traces_are_accepted_as_json(tmp_path, capsys):
    """Issue 33 item 10: one of the authors' trace files (JSON, not JSONL) is read, its blocks re-annotated."""
    from memento.format import trace_from_segments
    from tests.conftest import REAL_TRACES

    out = tmp_path / "out"
    source = next(p for p in REAL_TRACES if p.name == "memento_trace_response.json")
    assert main(_build(source, out)) == 0
    (record,) = _lines(out / "records.jsonl")
    original = json.loads(source.read_text())
    assert record["task_id"] == "memento_trace_response-1" and record["problem"] == original["problem"]
    authors = trace_from_segments(original)
    rebuilt = " ".join("".join(record["sentences"]).split())
    assert rebuilt == " ".join(" ".join(b.reasoning for b in authors.blocks).split())  # every word of every block
    assert len(record["blocks"]) >= 2 and len(record["mementos"]) == len(record["blocks"])


def test_a_json_list_of_chains_of_thought_is_read_like_jsonl(tmp_path, capsys):
    rows = [{"task_id": f"t{i}", "problem": "p", "domain": "math", "cot": _cot(i + 1)} for i in range(2)]
    data = tmp_path / "in.json"
    data.write_text(json.dumps(rows))
    assert main(_build(data, tmp_path / "out")) == 0
    assert [r["task_id"] for r in _lines(tmp_path / "out" / "records.jsonl")] == ["t0", "t1"]


def test_a_jsonl_file_named_json_is_still_read_line_by_line(tmp_path, capsys):
    """Many datasets ship JSONL under a .json name; `data build` read them before it learned .json documents."""
    rows = [{"task_id": f"t{i}", "problem": "p", "domain": "math", "cot": _cot(i + 1)} for i in range(2)]
    data = _write(tmp_path / "in.json", rows)
    assert main(_build(data, tmp_path / "out")) == 0, capsys.readouterr().err
    assert [r["task_id"] for r in _lines(tmp_path / "out" / "records.jsonl")] == ["t0", "t1"]


def test_a_json_file_of_neither_form_is_one_line_naming_the_record(tmp_path, capsys):
    data = tmp_path / "in.json"
    data.write_text(json.dumps([{"problem": "p", "segments": "oops"}]))
    assert main(_build(data, tmp_path / "out")) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and f"{data}:1" in error and "segments" in error
    assert not (tmp_path / "out" / "records.jsonl").exists()

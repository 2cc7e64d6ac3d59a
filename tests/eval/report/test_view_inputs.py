"""`memento eval view` on what a user may hand it (issue 34): an --output that is one of the run's own files or a
directory, and run files of the wrong shape. Each is one line and exit 2, and no file is written or changed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from memento.cli import main
from memento.eval.report.view import write_page
from tests.eval.report.small_run import write_small_run


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return write_small_run(tmp_path / "run")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    return captured.err


@pytest.mark.parametrize(
    "name", ["samples.jsonl", "summary.json", "manifest.json", "invocations.jsonl", "problems.jsonl", "link"]
)
def test_view_refuses_output_over_run_file(run_dir, tmp_path, capsys, name):
    """Item 1: the page never replaces a file of the run (also through a link, or the benchmark file it names)."""
    (tmp_path / "link").symlink_to(run_dir / "samples.jsonl")
    output = tmp_path / "link" if name == "link" else run_dir / name
    before = _snapshot(run_dir)
    assert main(["eval", "view", str(run_dir), "--output", str(output)]) == 2
    err = _one_line_error(capsys)
    assert f"--output {output}: is the run's own" in err and "choose another file" in err
    assert _snapshot(run_dir) == before


def test_view_writes_beside_the_run_and_rewrites_its_own_page(run_dir, capsys):
    for _ in range(2):
        assert main(["eval", "view", str(run_dir)]) == 0
    assert capsys.readouterr().out.splitlines() == [str(run_dir / "view.html")] * 2
    assert (run_dir / "view.html").read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_view_output_dir_names_the_users_path_and_leaves_nothing(run_dir, tmp_path, capsys):
    """Item 12: --output DIR is one line naming DIR (not a temporary file), and nothing is left beside it."""
    target = tmp_path / "pages"
    target.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["eval", "view", str(run_dir), "--output", str(target)]) == 2
    err = _one_line_error(capsys)
    assert f"--output {target}: is a directory" in err and ".tmp" not in err and ".partial" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before and list(target.iterdir()) == []


def test_write_page_failure_names_the_output_and_removes_its_temporary_file(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("x")  # a non-empty directory: the rename onto it fails
    with pytest.raises(OSError) as raised:
        write_page("<html></html>", target)
    assert raised.value.filename == str(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


BAD_SHAPES = [
    ("summary.json", lambda s: [s], "summary.json: expected a JSON object, got a list"),
    ("summary.json", lambda s: {**s, "modes": "oops"}, "summary.json: modes: expected an object, got a string"),
    (
        "summary.json",
        lambda s: {**s, "modes": {"memento": {**s["modes"]["memento"], "pass_at_1": "high"}}},
        "summary.json: modes.memento.pass_at_1: expected a number, got a string",
    ),
    ("manifest.json", lambda m: {**m, "benchmark": 5}, "manifest.json: benchmark: expected a string or null, got a"),
    ("manifest.json", lambda m: {**m, "modes": []}, "manifest.json: modes: expected an object, got a list"),
    (
        "manifest.json",
        lambda m: {**m, "modes": {"memento": {"config": "x"}}},
        "manifest.json: modes.memento.config: expected an object or null, got a string",
    ),
    ("invocations.jsonl", lambda i: {**i, "versions": [1]}, "invocations.jsonl:1: versions: expected an object"),
    ("invocations.jsonl", lambda i: {**i, "command": "memento"}, "invocations.jsonl:1: command: expected a list"),
    ("invocations.jsonl", lambda i: [i], "invocations.jsonl:1: expected a JSON object, got a list"),
    ("samples.jsonl", lambda r: {**r, "response": 5}, "samples.jsonl:1: response: expected a string, got a number"),
    ("samples.jsonl", lambda r: {**r, "kv_peak_tokens": "9"}, "samples.jsonl:1: kv_peak_tokens: expected a number"),
]


@pytest.mark.parametrize(("name", "damage", "expected"), BAD_SHAPES)
def test_view_refuses_run_files_of_the_wrong_shape(run_dir, capsys, name, damage, expected):
    """Item 6: JSON of the wrong shape in any file the page reads is one line naming the file and field."""
    path = run_dir / name
    if name.endswith(".jsonl"):
        lines = path.read_text().splitlines()
        lines[0] = json.dumps(damage(json.loads(lines[0])))
        path.write_text("\n".join(lines) + "\n")
    else:
        path.write_text(json.dumps(damage(json.loads(path.read_text()))))
    before = _snapshot(run_dir)
    assert main(["eval", "view", str(run_dir)]) == 2
    err = _one_line_error(capsys)
    assert expected in err and str(path) in err, err
    assert _snapshot(run_dir) == before  # no page written


def test_view_of_a_run_in_progress_names_a_sample_missing_a_summarized_field(run_dir, capsys):
    """Item 6: without summary.json the page summarizes the samples so far; one lacking a field it needs is named."""
    (run_dir / "summary.json").unlink()
    path = run_dir / "samples.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    del record["tokens"]
    lines[1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    assert main(["eval", "view", str(run_dir)]) == 2
    err = _one_line_error(capsys)
    assert f"{path}: sample {record['sample']} of {record['id']} in mode {record['mode']}: tokens: missing" in err


def _page_marks(page: Path) -> list[tuple[str, str, str, str]]:
    """(run, mode, problem, verdict) of every verdict mark on the page, in order."""
    html = page.read_text()
    marks = []
    for row in re.finditer(r"<tr data-problem-id='([^']*)'.*?</tr>", html):
        for mark in re.finditer(r"data-run='([^']*)' data-mode='([^']*)' [^>]*data-verdict='([^']*)'", row.group(0)):
            marks.append((mark.group(1), mark.group(2), row.group(1), mark.group(3)))
    return marks


def test_view_of_two_runs_marks_each_verdict_with_its_run_and_leaves_gaps(tmp_path, capsys):
    """Issue 33 item 8: two runs of one benchmark with different problem sets on one page: the union of their
    problems, each verdict marked with its run (the folder's name), a blank cell where a run lacks a problem."""
    shared = tmp_path / "problems.jsonl"
    sft = write_small_run(tmp_path / "sft", problems=3, benchmark=shared, correct=False)
    rl = write_small_run(tmp_path / "rl", problems=2, benchmark=shared)
    output = tmp_path / "compare.html"
    assert main(["eval", "view", str(sft), str(rl), "--output", str(output)]) == 0
    assert capsys.readouterr().out.splitlines() == [str(output)]
    marks = _page_marks(output)
    expected = [
        (run, mode, f"p{i}", verdict)
        for run, verdict, n in (("sft", "wrong", 3), ("rl", "correct", 2))
        for mode in ("memento", "no_eviction")
        for i in range(n)
        for _ in range(2)
    ]
    assert sorted(marks) == sorted(expected)
    html = output.read_text()
    assert len(re.findall(r"<td class='gap'", html)) == 2  # p2 in rl's memento and no_eviction columns
    changed = dict(re.findall(r"<tr data-problem-id='([^']*)'[^>]*data-changed='([^']*)'", html))
    assert changed == {"p0": "memento no_eviction", "p1": "memento no_eviction", "p2": ""}
    assert "problems per run: sft 3, rl 2" in html


def test_view_of_two_runs_of_one_name_uses_their_paths(tmp_path):
    shared = tmp_path / "problems.jsonl"
    first = write_small_run(tmp_path / "a" / "run", benchmark=shared)
    second = write_small_run(tmp_path / "b" / "run", benchmark=shared)
    assert main(["eval", "view", str(first), str(second), "--output", str(tmp_path / "page.html")]) == 0
    assert {run for run, *_ in _page_marks(tmp_path / "page.html")} == {str(first), str(second)}


def test_view_of_runs_on_different_benchmarks_is_one_line(tmp_path, capsys):
    first, second = write_small_run(tmp_path / "a"), write_small_run(tmp_path / "b", problems=3)
    assert main(["eval", "view", str(first), str(second), "--output", str(tmp_path / "page.html")]) == 2
    err = _one_line_error(capsys)
    assert f"RUN_DIR {second}: benchmark {second / 'problems.jsonl'}, but {first} is on" in err
    assert "give runs of one benchmark" in err and not (tmp_path / "page.html").exists()


@pytest.mark.parametrize("case", ["no output", "output over the second run", "a run twice"])
def test_view_of_several_runs_refusals(tmp_path, capsys, case):
    """Several runs: --output is required, is none of any run's files, and each run is given once."""
    shared = tmp_path / "problems.jsonl"
    first, second = (write_small_run(tmp_path / name, benchmark=shared) for name in ("a", "b"))
    before = _snapshot(tmp_path)
    argv = {
        "no output": [str(first), str(second)],
        "output over the second run": [str(first), str(second), "--output", str(second / "summary.json")],
        "a run twice": [str(first), str(tmp_path / "a" / ".." / "a"), "--output", str(tmp_path / "page.html")],
    }[case]
    assert main(["eval", "view", *argv]) == 2
    err = _one_line_error(capsys)
    assert {
        "no output": "--output: required with 2 RUN_DIRs",
        "output over the second run": f"would destroy the run {second}",
        "a run twice": "given twice",
    }[case] in err, err
    assert _snapshot(tmp_path) == before

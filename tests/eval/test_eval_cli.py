"""Bad input to `memento eval` and `memento eval grade`: one line naming what is wrong, exit code 2,
before any model is loaded."""

from __future__ import annotations

import pytest

from memento.cli import main
from memento.eval.benchmarks.sources import load_benchmark
from memento.eval.run.modes import resolve_modes
from memento.eval.run.options import EvalOptions
from memento.eval.run.runner import run_manifest
from memento.eval.run.store import check_manifest
from memento.toy import CHECKPOINT

MODEL = ["eval", "--model", str(CHECKPOINT)]


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *expected: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.startswith("Loading weights")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("memento eval: error: "), err
    for piece in expected:
        assert piece in lines[0], err
    return lines[0]


def test_unknown_benchmark(capsys, tmp_path):
    refused(capsys, [*MODEL, "--benchmark", "aime99", "--output", str(tmp_path)], "unknown benchmark 'aime99'")
    refused(capsys, [*MODEL, "--benchmark", str(tmp_path / "mine.jsonl")], "mine.jsonl", "no such benchmark file")


def test_bad_benchmark_file_line(capsys, tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"problem": "1+1", "answer": "2"}\n{"problem": "2+2" "answer": 4}\n')
    refused(capsys, [*MODEL, "--benchmark", str(path), "--output", str(tmp_path / "out")], "mine.jsonl:2")


def test_bad_options(capsys, tmp_path):
    refused(capsys, ["eval", "--benchmark", "toy"], "--model is required")
    refused(capsys, [*MODEL, "--benchmark", "toy", "--modes", "memento,turbo"], "unknown mode(s) turbo")
    refused(capsys, [*MODEL, "--benchmark", "toy", "--config", "{oops"], "--config config: not valid JSON")
    refused(capsys, [*MODEL, "--benchmark", "toy", "--samples", "0"], "samples must be >= 1")
    refused(capsys, ["eval", "--model", str(tmp_path), "--benchmark", "toy"], "--model", "no config.json")
    (tmp_path / "file").write_text("")
    refused(capsys, [*MODEL, "--benchmark", "toy", "--output", str(tmp_path / "file")], "--output", "is a file")


def test_a_resumed_run_must_keep_its_settings(capsys, tmp_path):
    first = EvalOptions(model=str(CHECKPOINT), benchmark="toy", limit=1, output=str(tmp_path))
    modes = resolve_modes(first.mode_names, False)
    check_manifest(tmp_path, run_manifest(first, load_benchmark("toy", 1), modes, None))
    argv = [*MODEL, "--benchmark", "toy", "--limit", "1", "--output", str(tmp_path), "--temperature", "0.3"]
    refused(capsys, argv, "manifest.json", "sampling=", "another --output")


def test_grade_input_errors(capsys, tmp_path):
    missing = tmp_path / "none.jsonl"
    refused(capsys, ["eval", "grade", "--benchmark", "toy", "--responses", str(missing)], "none.jsonl", "no such file")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "toy-0", "response": "x"}\n\n{"id": "toy-1", response}\n')
    refused(capsys, ["eval", "grade", "--benchmark", "toy", "--responses", str(bad)], "bad.jsonl:3: invalid JSON")
    refused(capsys, ["eval", "grade", "--benchmark", "nope", "--responses", str(bad)], "unknown benchmark 'nope'")


@pytest.mark.parametrize("name", ["1bad", "my mode", "a/b"])
def test_config_with_a_bad_mode_name_says_the_name_is_wrong(capsys, tmp_path, name):
    """Item 15: NAME=CONFIG with a NAME that is no mode name is refused for its name, not read as JSON; the new
    output folder of the failed start is not left behind (with no invocations.jsonl in it)."""
    output = tmp_path / "new"
    argv = [*MODEL, "--benchmark", "toy", "--config", f'{name}={{"enable": true}}', "--output", str(output)]
    line = refused(capsys, argv, f"the mode name {name!r} before '=' is not a name", "starting with a letter")
    assert "JSON" not in line
    assert not output.exists()


def test_a_failed_start_leaves_no_invocation_behind(capsys, tmp_path):
    """Item 15: a start refused after the output folder is taken (an unknown benchmark) writes no invocations.jsonl,
    in a new folder (removed again) or in an existing run's folder."""
    output = tmp_path / "new"
    refused(capsys, [*MODEL, "--benchmark", "aime99", "--output", str(output)], "unknown benchmark 'aime99'")
    assert not output.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    refused(capsys, [*MODEL, "--benchmark", "aime99", "--output", str(existing)], "unknown benchmark 'aime99'")
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]

"""`memento data build` from the command line: the run's report, its exit code, and the pipeline flags."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from memento.cli import main
from tests.data.fake_openai import FakeOpenAI
from tests.data.test_build import _write_input
from tests.servers import free_port


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there


def _build(data, out, base_url: str, *flags: str) -> list[str]:
    return [
        *("data", "build", "--input", str(data), "--output-dir", str(out), "--base-url", base_url),
        *("--model", "fake-model", "--api-key", "test", "--max-attempts", "2", "--backoff", "0.01"),
        *("--timeout", "2", "--min-block-tokens", "30", *flags),
    ]


@pytest.mark.slow  # a subprocess start (~10 s on a loaded 2-core machine)
def test_a_dead_endpoint_exits_non_zero_and_says_where_the_failures_are(tmp_path, capsys):
    data, out = tmp_path / "in.jsonl", tmp_path / "out"
    _write_input(data, 2)
    command = [sys.executable, "-m", "memento.cli", *_build(data, out, _dead_url(), "--min-blocks", "2")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("2 traces processed; 0 already done; 4 LLM calls (4 failed)")
    assert f"2 traces failed: reasons in {out / 'failures.jsonl'}" in lines
    assert any(line.startswith("first failure: t") and "APIConnectionError" in line for line in lines)
    assert "2 traces have no record: run the same command again to retry them" in lines
    assert len((out / "failures.jsonl").read_text().splitlines()) == 2

    # --no-retry-failures skips them and still exits non-zero; by default a live server gets them done
    assert main([*command[3:], "--no-retry-failures"]) == 1
    assert "2 traces failed in an earlier run and were not retried (--no-retry-failures)" in capsys.readouterr().out
    with FakeOpenAI() as server:
        assert main(_build(data, out, server.base_url, "--min-blocks", "2")) == 0
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert sorted(r["task_id"] for r in records) == ["t0", "t1"]


def test_block_count_flags_and_the_authors_variance_weight_reach_the_segmenter(tmp_path, capsys):
    data = tmp_path / "in.jsonl"
    _write_input(data, 2)
    with FakeOpenAI() as server:
        flags = ("--min-blocks", "3", "--max-blocks", "3", "--variance-weight", "2.0", "--no-judge")
        code = main(_build(data, tmp_path / "out", server.base_url, *flags))
    assert code == 0, capsys.readouterr().err
    assert "2 traces processed; 0 already done" in capsys.readouterr().out
    records = [json.loads(line) for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert [len(r["blocks"]) for r in records] == [3, 3]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--min-blocks", "5", "--max-blocks", "4"], "max_blocks (4) must be >= min_blocks (5)"),
        (["--variance-weight", "-1"], "variance_penalty: expected a number >= 0, got -1.0"),
        (["--limit", "-1"], "--limit: expected a number of traces >= 1, got -1"),
    ],
)
def test_bad_pipeline_flags_are_one_line(tmp_path, capsys, flags, message):
    data = tmp_path / "in.jsonl"
    _write_input(data, 1)
    arguments = ["data", "build", "--input", str(data), "--output-dir", str(tmp_path / "o"), "--offline", *flags]
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "o").exists()

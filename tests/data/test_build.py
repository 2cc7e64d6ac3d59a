"""The data pipeline against a real HTTP server speaking the OpenAI protocol, faults, resume, offline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from memento.cli import main
from memento.data.build import BuildOptions, build
from memento.data.llm import LLMClient
from memento.format import parse_text
from tests.conftest import EXAMPLES
from tests.data.fake_openai import FakeOpenAI

OPTIONS = BuildOptions(min_block_tokens=30, workers=2)


def _cot(seed: int, sentences: int = 24) -> str:
    parts = []
    for i in range(sentences):
        opener = "Alternatively, we" if i % 8 == 7 else "We"
        parts.append(f"{opener} compute step {i} of case {seed} so that x{i} = {i * seed} holds here.")
    return "<think>" + " ".join(parts) + "</think>\nThe answer is 42."


def _write_input(path, count: int, extra: dict | None = None) -> None:
    lines = [
        {"task_id": f"t{i}", "problem": f"problem {i}", "domain": "math", "cot": _cot(i + 1)} for i in range(count)
    ]
    if extra:
        lines.append(extra)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _client(server: FakeOpenAI, **overrides) -> LLMClient:
    settings = {"timeout": 0.5, "max_attempts": 5, "backoff": 0.01, **overrides}
    return LLMClient(server.base_url, "fake-model", api_key="test", **settings)


def test_llm_pipeline_retries_faults_and_records_usage(tmp_path):
    data = tmp_path / "in.jsonl"
    _write_input(data, 2)
    with FakeOpenAI() as server:
        server.faults = ["500", "429", "timeout", "malformed"]
        summary = build(data, tmp_path / "out", OPTIONS, client=_client(server), judge=_client(server), progress=False)
    assert summary.failed == 0 and summary.processed == 2
    assert server.requests[:4] == ["500", "429", "timeout", "malformed"]  # each fault retried
    records = [json.loads(line) for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert sorted(r["task_id"] for r in records) == ["t0", "t1"]
    total_retries = sum(r["usage"]["retries"] for r in records)
    assert total_retries == 4
    for record in records:
        assert len(record["blocks"]) >= 2 and len(record["mementos"]) == len(record["blocks"])
        assert record["refinement_rounds"] == 1 and min(record["judge_scores"]) >= 8  # block 1 refined
        assert all(m.startswith("revised memento") for m in record["mementos"])
        assert record["usage"]["calls"] >= 4 and record["usage"]["prompt_tokens"] > 0
        assert "".join(record["sentences"]).strip() in _cot(int(record["task_id"][1:]) + 1)
        # cut where the next sentence opens with "Alternatively" (score 3)
        assert any(b.startswith("Alternatively") for b in record["blocks"][1:])
        trace = parse_text(record["text"])
        assert [b.memento for b in trace.blocks] == record["mementos"] and trace.answer == "The answer is 42."


def test_a_trace_that_keeps_failing_is_recorded_and_the_run_completes(tmp_path, capsys):
    data = tmp_path / "in.jsonl"
    _write_input(data, 2, {"task_id": "bad", "problem": "FAIL_ALWAYS", "cot": _cot(9)})
    with FakeOpenAI() as server:
        code = main(
            [
                "data",
                "build",
                "--input",
                str(data),
                "--output-dir",
                str(tmp_path / "out"),
                "--base-url",
                server.base_url,
                "--model",
                "fake-model",
                "--api-key",
                "test",
                "--min-block-tokens",
                "30",
                "--max-attempts",
                "3",
                "--backoff",
                "0.01",
                "--timeout",
                "2",
            ]
        )
    assert code == 0
    assert "3 traces processed (1 failed" in capsys.readouterr().out
    failure = json.loads((tmp_path / "out" / "failures.jsonl").read_text())
    assert failure["task_id"] == "bad" and "gave up after 3 attempts" in failure["reason"]
    assert "InternalServerError" in failure["reason"]
    assert len((tmp_path / "out" / "records.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_killed_run_resumes_without_loss_or_duplicates(tmp_path):
    data, out = tmp_path / "in.jsonl", tmp_path / "out"
    _write_input(data, 6)
    with FakeOpenAI(delay=0.15) as server:
        command = [
            sys.executable,
            "-m",
            "memento.cli",
            "data",
            "build",
            "--input",
            str(data),
            "--output-dir",
            str(out),
            "--base-url",
            server.base_url,
            "--model",
            "m",
            "--api-key",
            "k",
            "--min-block-tokens",
            "30",
            "--workers",
            "1",
            "--no-judge",
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        records = out / "records.jsonl"
        deadline = time.time() + 60
        while time.time() < deadline and not (records.exists() and len(records.read_text().splitlines()) >= 2):
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        done_before = len(records.read_text().splitlines())
        assert 2 <= done_before < 6, "the kill must land mid-run"
        with records.open("a") as handle:
            handle.write('{"task_id": "t5", "blocks": [')  # a torn last line, as a kill mid-write leaves
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    ids = [json.loads(line)["task_id"] for line in records.read_text().splitlines()]
    assert sorted(ids) == [f"t{i}" for i in range(6)]  # all present exactly once
    assert sorted((out / "finished_ids.txt").read_text().split()) == sorted(ids)


def test_kill_between_record_and_id_is_reconciled_on_resume(tmp_path):
    """A record written but its id not yet listed (kill between the two appends): the id is listed on resume."""
    data, out = tmp_path / "in.jsonl", tmp_path / "out"
    _write_input(data, 2)
    build(data, out, OPTIONS, progress=False)
    finished = out / "finished_ids.txt"
    finished.write_text("t0\n")  # as if killed right after t1's record reached records.jsonl
    summary = build(data, out, OPTIONS, progress=False)
    assert summary.processed == 0 and summary.skipped == 2
    assert sorted(finished.read_text().split()) == ["t0", "t1"]
    assert len((out / "records.jsonl").read_text().splitlines()) == 2


def test_offline_pipeline_on_the_real_trace_trains(tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "data",
                "build",
                "--input",
                str(EXAMPLES / "openthoughts_example_trace.jsonl"),
                "--output-dir",
                str(out),
                "--offline",
            ]
        )
        == 0
    )
    trace = parse_text(json.loads((out / "records.jsonl").read_text())["text"])
    assert len(trace.blocks) >= 4 and all(b.memento for b in trace.blocks)
    assert main(["data", "stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["traces"] == 1 and 0.05 < stats["compression_ratio"]["p50"] < 0.3
    # the record trains with `memento train`
    from tests.conftest import build_tokenizer
    from tests.models import save_checkpoint

    save_checkpoint(tmp_path / "base", build_tokenizer(with_memento_tokens=False))
    code = main(
        [
            "train",
            "--model",
            str(tmp_path / "base"),
            "--data",
            str(out / "records.jsonl"),
            "--output",
            str(tmp_path / "model"),
            "--stage",
            "memento",
            "--epochs",
            "1",
            "--max-length",
            "4096",
            "--logging-steps",
            "1",
        ]
    )
    assert code == 0
    log = json.loads((tmp_path / "model" / "memento_training.json").read_text())
    assert log["log_history"] and log["memento_config"]["keep_last_n_blocks"] == 0


def test_bad_input_names_the_line(tmp_path, capsys):
    data = tmp_path / "in.jsonl"
    data.write_text('{"task_id": "a", "cot": "<think>x</think>"}\n{"task_id": "b"}\n')
    assert main(["data", "build", "--input", str(data), "--output-dir", str(tmp_path / "o"), "--offline"]) == 2
    assert "in.jsonl:2: record lacks a string 'cot'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="max_attempts"):
        LLMClient("http://127.0.0.1:1/v1", "m", max_attempts=0)


def test_two_pass_scoring_averages_windows_of_16_and_11():
    from memento.data.llm import Usage
    from memento.data.score import score_with_llm, windows

    sentences = [f"Sentence {i} is here." if i % 5 else f"Alternatively, sentence {i}." for i in range(40)]
    with FakeOpenAI() as server:
        usage = Usage()
        scores = score_with_llm(sentences, _client(server), two_pass=True, usage=usage)
    assert usage.calls == len(windows(40, 16)) + len(windows(40, 11)) == 3 + 4
    # the fake scores 3 before "Alternatively" and k % 2 elsewhere, in both passes: the average is the same
    assert scores == [3.0 if (k + 1) % 5 == 0 else float(k % 2) for k in range(39)]
    assert all(b - a in (16, 11) or b == 40 for a, b in windows(40, 16) + windows(40, 11))

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
from memento.data.build import BuildOptions, build, process_trace
from memento.data.llm import LLMClient
from memento.format import parse_text
from tests.conftest import EXAMPLES
from tests.data.fake_openai import FakeOpenAI
from tests.servers import free_port

OPTIONS = BuildOptions(min_block_tokens=30, min_blocks=2, workers=2)


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
    assert code == 1  # a trace without a record is never a silent success
    out = capsys.readouterr().out
    assert "3 traces processed; 0 already done" in out
    assert f"1 traces failed: reasons in {tmp_path / 'out' / 'failures.jsonl'}" in out
    failure = json.loads((tmp_path / "out" / "failures.jsonl").read_text())
    assert failure["task_id"] == "bad" and "gave up after 3 attempts" in failure["reason"]
    assert "InternalServerError" in failure["reason"]
    assert len((tmp_path / "out" / "records.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_killed_run_resumes_without_loss_or_duplicates(tmp_path):
    data, out = tmp_path / "in.jsonl", tmp_path / "out"
    _write_input(data, 6)
    # t3's first request is held by the server: the kill lands while t0-t2 are done and t3 is in flight
    with FakeOpenAI(hold="problem 3") as server:
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
        deadline = time.time() + 120
        while time.time() < deadline and not (records.exists() and len(records.read_text().splitlines()) >= 3):
            assert process.poll() is None, "the run ended before it was killed"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert len(records.read_text().splitlines()) == 3
        with records.open("a") as handle:
            handle.write('{"task_id": "t5", "blocks": [')  # a torn last line, as a kill mid-write leaves
        server.release.set()
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
    assert stats["traces"] == 1 and 0.05 < stats["memento_to_block_chars"]["p50"] < 0.3
    assert stats["memento_to_block_tokens"] == pytest.approx(
        stats["tokens_per_memento"] / stats["tokens_per_block"]
    )  # one direction everywhere: memento / block
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
    # each request scores by its number (1-7), so the two passes disagree on every boundary
    with FakeOpenAI(boundary_score=lambda k, following, number: min(3.0, (number - 1) / 2)) as server:
        usage = Usage()
        scores = score_with_llm(sentences, _client(server), two_pass=True, usage=usage)
    assert usage.calls == len(windows(40, 16)) + len(windows(40, 11)) == 3 + 4
    answers: dict[int, list[float]] = {}
    for boundary, score in server.answered:
        answers.setdefault(boundary, []).append(score)
    assert sorted(answers) == list(range(39)) and all(len(a) == 2 for a in answers.values())  # once per pass
    assert all(a != b for a, b in answers.values())
    assert scores == [(a + b) / 2 for a, b in (answers[k] for k in range(39))]
    assert all(b - a in (16, 11) or b == 40 for a, b in windows(40, 16) + windows(40, 11))


def test_block_count_options_and_the_authors_variance_weight_name():
    from transformers import HfArgumentParser

    assert (BuildOptions().min_blocks, BuildOptions().max_blocks) == (10, 20)  # the authors' pipeline
    (parsed,) = HfArgumentParser(BuildOptions).parse_args_into_dataclasses(
        ["--variance-weight", "1.0", "--min-blocks", "3", "--max-blocks", "4"]
    )
    assert parsed == BuildOptions(variance_penalty=1.0, min_blocks=3, max_blocks=4)
    assert parsed.variance_weight == 1.0
    record = {"task_id": "t", "problem": "p", "cot": _cot(3, sentences=40)}
    for low, high in ((2, 2), (3, 4), (6, 9)):
        result = process_trace(record, BuildOptions(min_block_tokens=30, min_blocks=low, max_blocks=high))
        assert low <= len(result["blocks"]) <= high
    with pytest.raises(ValueError, match=r"max_blocks \(2\) must be >= min_blocks \(3\)"):
        BuildOptions(min_blocks=3, max_blocks=2)
    with pytest.raises(ValueError, match="min_blocks: expected an integer >= 1, got 0"):
        BuildOptions(min_blocks=0)


def test_a_run_with_failures_says_so_and_a_rerun_retries_them(tmp_path):
    data, out = tmp_path / "in.jsonl", tmp_path / "out"
    _write_input(data, 3)
    dead = LLMClient(f"http://127.0.0.1:{free_port()}/v1", "m", api_key="k", max_attempts=2, backoff=0.01)
    summary = build(data, out, OPTIONS, client=dead, judge=dead, progress=False)
    assert (summary.processed, summary.failed, summary.outstanding, summary.exit_code) == (3, 3, 3, 1)
    # every attempt of the first (scoring) call of each trace is counted, and counted as failed
    assert (summary.usage.calls, summary.usage.failed_calls) == (6, 6)
    report = summary.report(out)
    assert "6 LLM calls (6 failed)" in report
    assert f"3 traces failed: reasons in {out / 'failures.jsonl'}" in report
    assert "APIConnectionError" in report and "run the same command again" in report
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert sorted(f["task_id"] for f in failures) == ["t0", "t1", "t2"]
    assert all(f["usage"]["calls"] == 2 and "gave up after 2 attempts" in f["reason"] for f in failures)
    assert not (out / "records.jsonl").exists()

    # skipping failures is a choice, and the folder is still reported incomplete
    skip = BuildOptions(min_block_tokens=30, min_blocks=2, workers=2, retry_failures=False)
    skipped = build(data, out, skip, client=dead, judge=dead, progress=False)
    assert (skipped.processed, skipped.skipped, skipped.exit_code) == (0, 3, 1)
    assert "3 traces failed in an earlier run and were not retried" in skipped.report(out)

    # by default a re-run retries them: nothing is lost
    with FakeOpenAI() as server:
        again = build(data, out, OPTIONS, client=_client(server), judge=_client(server), progress=False)
    assert (again.processed, again.retried, again.failed, again.outstanding, again.exit_code) == (3, 3, 0, 0, 0)
    records = [json.loads(line)["task_id"] for line in (out / "records.jsonl").read_text().splitlines()]
    assert sorted(records) == ["t0", "t1", "t2"]
    done = build(data, out, OPTIONS, client=_client(server), progress=False)
    assert (done.processed, done.skipped, done.exit_code) == (0, 3, 0)


def test_a_refused_request_is_not_retried_and_is_counted(tmp_path):
    from memento.data.llm import LLMFailure, Usage

    with FakeOpenAI() as server:
        client = LLMClient(server.base_url.replace("/v1", "/nowhere"), "m", api_key="k", max_attempts=3, backoff=0.01)
        usage = Usage()
        with pytest.raises(LLMFailure, match="not retried: NotFoundError"):
            client.ask_json("system", "user", lambda answer: answer, usage)
    assert (usage.calls, usage.failed_calls, usage.retries) == (1, 1, 0)

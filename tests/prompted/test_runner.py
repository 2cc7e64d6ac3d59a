"""`memento prompted` (and `python -m memento.prompted`, the same command): the public JSON line, bad input,
benchmarks by name, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memento.prompted.__main__ import main
from memento.prompted.output import ResultLog
from tests.data.fake_openai import FakeOpenAI
from tests.prompted.scripted import ScriptedModel, problem_text

SRC = Path(__file__).resolve().parents[2] / "src"
PUBLIC_KEYS = {
    "answer",
    "rounds",
    "mementos",
    "peak_context_tokens",
    "total_prompt_tokens",
    "total_completion_tokens",
    "fallbacks",
}


def _command(server: FakeOpenAI, *flags: str, module: str = "memento.prompted") -> list[str]:
    command = [sys.executable, "-m", module, *(["prompted"] if module == "memento.cli" else [])]
    return [*command, "--base-url", server.base_url, "--model", "scripted", *flags]


def _environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_json_last_line_is_the_public_result():
    model = ScriptedModel()
    with FakeOpenAI(responder=model) as server:
        done = subprocess.run(
            _command(
                server,
                "--prompt",
                problem_text("ok,no_memento"),
                "--json",
                "--block-tokens",
                "30",
                module="memento.cli",
            ),
            capture_output=True,
            text=True,
            env=_environment(),
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result) >= PUBLIC_KEYS
    assert result["answer"] == "\\boxed{3}" and result["rounds"] == 3
    assert result["mementos"] == ["x is at least 1", "recovered memento"]
    assert result["fallbacks"] == 1 and result["fallback_events"] == [{"kind": "no_memento", "round": 2}]
    assert result["total_prompt_tokens"] == sum(p for _, p, _ in model.log)
    assert result["total_completion_tokens"] == sum(c for _, _, c in model.log)
    assert result["peak_context_tokens"] == max(p + c for _, p, c in model.log)


def test_the_table_puts_the_plain_call_beside_prompted_mode(capsys):
    with FakeOpenAI(responder=ScriptedModel()) as server:
        status = main(
            ["--base-url", server.base_url, "--model", "m", "--prompt", problem_text("ok,ok,ok", block=100), "--plain"]
        )
    out = capsys.readouterr().out
    assert status == 0
    assert "peak plain/prompted" in out and "1 solved: mean peak context" in out and "plain call: mean peak" in out


@pytest.mark.parametrize(
    ("flags", "file_text", "message"),
    [
        ([], None, "memento prompted: error: expected exactly one of --prompt, --file, --benchmark"),
        (
            ["--prompt", "x", "--block-tokens", "0"],
            None,
            "memento prompted: error: block_tokens: expected an integer >= 1",
        ),
        (
            ["--file", "{file}"],
            '{"id": 1, "problem": "a"}\n{"id": 1, "problem": "b"}\n',
            "problems.jsonl:2: field 'id'",
        ),
        (["--file", "{file}"], '{"id": 1, "problem": "a"}\nnot json\n', "problems.jsonl:2: invalid JSON"),
        (["--file", "{file}"], '{"id": 1, "question": ""}\n', "problems.jsonl:1: field 'problem'"),
        (["--benchmark", "nope"], None, "memento prompted: error: --benchmark: unknown benchmark 'nope': pass one of"),
        (["--benchmark", "{file}"], None, "problems.jsonl: no such benchmark file"),
        (["--prompt", "x", "--prompts", "{file}"], "round = 'x'", "key 'round': missing the placeholder {problem}"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, flags, file_text, message):
    path = tmp_path / ("prompts.toml" if "--prompts" in flags else "problems.jsonl")
    if file_text is not None:
        path.write_text(file_text)
    argv = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m", *(f.format(file=path) for f in flags)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_benchmark_by_name_is_memento_evals(capsys):
    from memento.eval.benchmarks.sources import load_benchmark

    expected = load_benchmark("toy", 2).problems
    asked: list[str] = []

    def answer_at_once(request: dict) -> str:
        asked.append(request["messages"][-1]["content"])
        return "</think> \\boxed{5}"

    with FakeOpenAI(responder=answer_at_once) as server:
        status = main(["--base-url", server.base_url, "--model", "m", "--benchmark", "toy", "--limit", "2", "--json"])
    assert status == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in records] == [p.id for p in expected] == ["toy-0", "toy-1"]
    assert all(r["answer"] == "\\boxed{5}" and r["rounds"] == 1 for r in records)
    assert len(asked) == 2 and all(any(p.problem in text for text in asked) for p in expected)


def test_an_unreachable_endpoint_fails_the_problem_not_the_run(capsys):
    argv = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--prompt", "2+2?", "--max-retries", "0", "--json"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out.splitlines()[-1])["error"].startswith("cannot reach the endpoint")
    assert "memento prompted: problem prompt: cannot reach the endpoint" in captured.err
    assert "Traceback" not in captured.err


def test_killed_mid_run_the_rerun_completes_without_redoing_finished_problems(tmp_path):
    problems = tmp_path / "problems.jsonl"
    ids = [f"p{k}" for k in range(6)]
    with problems.open("w") as handle:
        for k, problem_id in enumerate(ids):
            handle.write(json.dumps({"id": problem_id, "problem": problem_text("ok,ok", tag=f"T{k}T")}) + "\n")
    output = tmp_path / "results.jsonl"
    flags = ("--file", str(problems), "--output", str(output), "--concurrency", "1", "--json")
    # the first run waits on p3's first call (concurrency 1): killed there, whatever the machine's speed
    with FakeOpenAI(responder=ScriptedModel(), hold="T3T") as server:
        process = subprocess.Popen(
            _command(server, *flags), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_environment()
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
            any("T3T" in str(body) for body in server.bodies)
            and output.exists()
            and len(output.read_text().splitlines()) == 3
        ):
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.communicate()
        finished_first = [json.loads(line)["id"] for line in output.read_text().splitlines()]
        assert finished_first == ids[:3]  # a partial, readable file
        requests_first = len(server.bodies)
        server.release.set()

        done = subprocess.run(_command(server, *flags), capture_output=True, text=True, env=_environment(), timeout=120)
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in output.read_text().splitlines()]
        assert sorted(r["id"] for r in lines) == ids  # each problem exactly once
        printed = [json.loads(line) for line in done.stdout.splitlines()]
        assert [r["id"] for r in printed] == ids and all(r["answer"] == "\\boxed{3}" for r in printed)
        # the rerun asked nothing about the problems finished before the kill: 3 calls each for the others
        rerun = server.bodies[requests_first:]
        for k, problem_id in enumerate(ids):
            asked = sum(f"T{k}T" in body["messages"][-1]["content"] for body in rerun)
            assert asked == (0 if problem_id in finished_first else 3), problem_id


def test_a_torn_last_line_is_cut_and_that_problem_solved_again(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "a", "answer": "1"}\n{"id": "b", "error": "x"}\n{"id": "c", "ans')
    log = ResultLog(path)
    assert set(log.done) == {"a"}
    assert path.read_text() == '{"id": "a", "answer": "1"}\n{"id": "b", "error": "x"}\n'
    log.write({"id": "b", "answer": "2"})
    assert set(ResultLog(path).done) == {"a", "b"}

"""`memento eval --backend prompted` against the scripted chat model over real HTTP (the official `openai`
client): the whole eval path (graded records, the summary's keys and figures, the table), fallbacks
counted, the endpoint's own bill, concurrency, a failed sample resumed, `memento eval grade` on the
run's samples, and bad input refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memento.cli import main
from memento.kv import KVGeometry
from tests.data.fake_openai import FakeOpenAI
from tests.prompted.scripted import ScriptedModel, problem_text

# id -> (script, follow_up, gold); the scripted model answers \boxed{round} once its script runs out,
# and its plain call always answers \boxed{7}
PROBLEMS = {
    "clean": ("ok", "ok", "2"),
    "forgot": ("ok,no_memento", "ok", "3"),
    "endless": ("endless", "ok", "2"),
    "looping": ("ok,ok,ok", "ok", "3"),
    "silent": ("empty", "empty", "7"),
    "blank": ("ok,empty_answer", "ok", "1"),
}
FALLBACKS = {  # what the loop must record for each problem
    "clean": [],
    "forgot": [("no_memento", 2)],
    "endless": [("cut_off", 1)],
    "looping": [("max_rounds", 3)],
    "silent": [("empty", 1), ("empty_memento", 1)],
    "blank": [("empty_answer", 2)],
}
QWEN3_8B_BYTES = KVGeometry.preset("qwen3-8b").bytes_per_token
BUDGETS = ("--max-rounds", "3", "--block-tokens", "30", "--memento-tokens", "16", "--answer-tokens", "16")


def write_benchmark(path: Path, ids: list[str] | None = None) -> Path:
    with path.open("w") as handle:
        for problem_id in ids or PROBLEMS:
            script, follow_up, gold = PROBLEMS[problem_id]
            problem = problem_text(script, follow_up=follow_up, tag=problem_id)
            handle.write(json.dumps({"id": problem_id, "problem": problem, "answer": gold}) + "\n")
    return path


def eval_command(server: FakeOpenAI, benchmark: Path, output: Path, *flags: str) -> list[str]:
    """The `memento eval` argv; a budget in `flags` replaces the default one (a flag given twice gets a note)."""
    pairs = zip(BUDGETS[::2], BUDGETS[1::2], strict=True)
    budgets = [item for flag, value in pairs if flag not in flags for item in (flag, value)]
    return [
        *("eval", "--backend", "prompted", "--base-url", server.base_url, "--model", "scripted"),
        *("--benchmark", str(benchmark), "--output", str(output), "--temperature", "0", "--no-progress"),
        *budgets,
        *flags,
    ]


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out.strip().splitlines()[-1])


def read_records(output: Path) -> dict[tuple[str, str], dict]:
    lines = (output / "samples.jsonl").read_text().splitlines()
    records = {(r["mode"], r["id"]): r for r in map(json.loads, lines)}
    assert len(records) == len(lines), "a sample was written twice"
    return records


def untimed(summary: dict) -> dict:
    return {name: {k: v for k, v in m.items() if k != "tokens_per_second"} for name, m in summary["modes"].items()}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict, list[tuple[str, int, int]]]:
    """One finished run (with a KV geometry) and the scripted model's log of every call it answered."""
    folder = tmp_path_factory.mktemp("prompted")
    benchmark, output = write_benchmark(folder / "scripted.jsonl"), folder / "run"
    model = ScriptedModel()
    with FakeOpenAI(responder=model) as server:
        argv = eval_command(server, benchmark, output, "--geometry", "qwen3-8b", "--json")
        status = main(argv)
    assert status == 0
    summary = json.loads((output / "summary.json").read_text())
    return benchmark, output, summary, list(model.log)


def test_the_summary_has_both_modes_their_accuracy_and_the_fallbacks_counted(run):
    _, _, summary, _ = run
    assert summary["backend"] == "prompted" and list(summary["modes"]) == ["prompted", "plain"]
    assert summary["reference_mode"] == "plain" and summary["prompted"]["block_tokens"] == 30
    prompted, plain = summary["modes"]["prompted"], summary["modes"]["plain"]
    for figures in (prompted, plain):
        assert figures["problems"] == figures["samples"] == len(PROBLEMS)
        for key in ("pass_at_1", "pass_at_1_stderr", "kv_peak_tokens_mean", "kv_peak_bytes_mean", "billed_tokens_mean"):
            assert figures[key] is not None, key
    assert prompted["pass_at_1"] == pytest.approx(3 / 6)  # clean, forgot, endless answer their gold
    assert plain["pass_at_1"] == pytest.approx(1 / 6)  # \boxed{7} is right for "silent" only
    assert prompted["pass_at_1_gap_pp"] == pytest.approx(100 * (1 / 6 - 3 / 6))
    events = [event for kinds in FALLBACKS.values() for event in kinds]
    assert prompted["fallbacks_mean"] == pytest.approx(len(events) / 6)
    assert prompted["fallback_kinds"] == {kind: sum(k == kind for k, _ in events) for kind, _ in events}
    assert prompted["format_ok"] == pytest.approx(1 / 6)  # only "clean" needed no help
    assert prompted["truncated"] == pytest.approx(1 / 6)  # "looping" ran out of rounds
    assert prompted["rounds_mean"] == prompted["blocks_mean"] == pytest.approx((2 + 3 + 2 + 3 + 2 + 2) / 6)
    assert "fallbacks_mean" not in plain and plain["calls_mean"] == 1
    # peak KV is peak context tokens; with a geometry, bytes are tokens x its bytes per token
    assert prompted["kv_peak_bytes_mean"] == pytest.approx(prompted["kv_peak_tokens_mean"] * QWEN3_8B_BYTES)
    assert prompted["kv_peak_ratio"] == pytest.approx(prompted["kv_peak_tokens_mean"] / plain["kv_peak_tokens_mean"])
    assert prompted["kv_auc_gb_ktok_mean"] is None


def test_each_record_is_graded_and_carries_the_endpoints_own_bill(run):
    _, output, _, log = run
    records = read_records(output)
    assert set(records) == {(mode, problem) for mode in ("prompted", "plain") for problem in PROBLEMS}
    for (mode, problem), record in records.items():
        assert record["kv_from"] == "endpoint" and record["seed"] is None
        assert record["kv_peak_bytes"] == record["kv_peak_tokens"] * QWEN3_8B_BYTES
        if mode == "plain":
            assert record["calls"] == 1 and record["kv_peak_tokens"] == record["prompt_tokens"] + record["tokens"]
            continue
        assert [(e["kind"], e["round"]) for e in record["fallback_events"]] == FALLBACKS[problem]
        assert record["fallbacks"] == len(FALLBACKS[problem]) and record["blocks"] == record["rounds"]
        assert record["response"].count("<|summary_end|>") == record["mementos"]
        assert record["response"].split("</think>")[0].count("<|block_start|>") == 0  # blocks were dropped
    assert records[("prompted", "forgot")]["answer"] == "3" and records[("prompted", "forgot")]["correct"]
    assert records[("prompted", "looping")]["finish_reason"] == "length"
    # every call the model answered is billed to exactly one record
    assert sum(r["calls"] for r in records.values()) == len(log)
    assert sum(r["prompt_tokens"] for r in records.values()) == sum(p for _, p, _ in log)
    assert sum(r["tokens"] for r in records.values()) == sum(c for _, _, c in log)
    assert max(r["kv_peak_tokens"] for r in records.values()) == max(p + c for _, p, c in log)
    assert {"summary.json", "manifest.json", "accuracy_vs_kv.png", "kv_peak_cdf.png"} <= {
        p.name for p in output.iterdir()
    }


def test_a_finished_run_reruns_without_a_call_and_prints_the_table(run, capsys):
    benchmark, output, summary, _ = run
    model = ScriptedModel()
    with FakeOpenAI(responder=model) as server:
        status = main(eval_command(server, benchmark, output, "--geometry", "qwen3-8b"))
    out = capsys.readouterr().out
    assert status == 0 and model.log == []
    assert json.loads((output / "summary.json").read_text())["modes"] == summary["modes"]
    for column in ("pass@1 ± se", "peak KV tokens", "vs plain", "billed tokens", "fallbacks"):
        assert column in out, column
    assert "prompted" in out and "measured at the endpoint" in out


def test_grading_the_runs_samples_gives_its_summary(run, capsys):
    benchmark, output, summary, _ = run
    argv = ["eval", "grade", "--benchmark", str(benchmark), "--responses", str(output / "samples.jsonl")]
    graded = run_json(capsys, [*argv, "--geometry", "qwen3-8b", "--json"])
    assert set(graded["modes"]) == set(summary["modes"])
    for name, figures in summary["modes"].items():
        assert graded["modes"][name] == figures, name


def test_a_failed_sample_is_solved_again_on_rerun(tmp_path, capsys):
    benchmark = write_benchmark(tmp_path / "b.jsonl", ["clean", "forgot", "endless"])
    flags = ("--concurrency", "1", "--max-retries", "0", "--json")
    with FakeOpenAI(responder=ScriptedModel()) as server:
        server.faults = ["500"]  # the first call: round 1 of "clean" in prompted mode
        status = main(eval_command(server, benchmark, tmp_path / "run", *flags))
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1
    assert "1 of 6 samples failed at the endpoint; first: prompted clean sample 0" in err[0] and "500" in err[0]
    every = {(mode, problem) for mode in ("prompted", "plain") for problem in ("clean", "forgot", "endless")}
    assert set(read_records(tmp_path / "run")) == every - {("prompted", "clean")}
    model = ScriptedModel()
    with FakeOpenAI(responder=model) as server:
        resumed = run_json(capsys, eval_command(server, benchmark, tmp_path / "run", *flags))
        assert [kind for kind, _, _ in model.log] == ["ok", "answer"]  # only the missing sample's two rounds
        fresh = run_json(capsys, eval_command(server, benchmark, tmp_path / "fresh", *flags))
    assert untimed(resumed) == untimed(fresh)
    assert resumed["modes"]["prompted"]["kv_peak_bytes_mean"] is None  # no geometry: tokens only
    assert resumed["kv_geometry"] is None


def test_samples_run_concurrently_up_to_the_limit(tmp_path, capsys):
    benchmark = write_benchmark(tmp_path / "b.jsonl", ["clean", "forgot", "endless", "blank"])
    model = ScriptedModel(delay=0.1)
    with FakeOpenAI(responder=model) as server:
        summary = run_json(capsys, eval_command(server, benchmark, tmp_path / "run", "--concurrency", "3", "--json"))
    assert 2 <= model.max_in_flight <= 3
    assert summary["modes"]["prompted"]["samples"] == 4


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--modes", "memento"), "unknown mode(s) memento in --modes; the prompted backend runs prompted, plain"),
        (("--config", '{"enable": true}'), "--config and --baseline-model are for the hf, vllm and openai backends"),
        (("--max-rounds", "0"), "max_rounds: expected an integer >= 1, got 0"),
        (("--prompts", "missing.toml"), "--prompts missing.toml: no such file"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, flags, expected):
    benchmark = write_benchmark(tmp_path / "b.jsonl", ["clean"])
    with FakeOpenAI(responder=ScriptedModel()) as server:
        status = main(eval_command(server, benchmark, tmp_path / "run", *flags))
        assert server.requests == []
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("memento eval: error: "), err
    assert expected in err[0], err


def test_grade_refuses_an_endpoint_record_without_its_figures(tmp_path, capsys):
    benchmark = write_benchmark(tmp_path / "b.jsonl", ["clean"])
    responses = tmp_path / "samples.jsonl"
    record = {"mode": "prompted", "id": "clean", "response": "</think> \\boxed{2}", "kv_from": "endpoint"}
    responses.write_text(json.dumps({**record, "prompt_tokens": 10, "tokens": 5, "kv_peak_tokens": 15}) + "\n")
    status = main(["eval", "grade", "--benchmark", str(benchmark), "--responses", str(responses)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert f"{responses}:1: an endpoint-measured record needs an integer 'calls'" in err[0]


def test_the_view_shows_rounds_mementos_sent_and_peak_context(run):
    """`memento eval view` of a prompted run: every problem and sample, the endpoint's figures per sample."""
    from memento.eval.report.view import render_page
    from memento.eval.report.view_data import load_run

    _, output, summary, _ = run
    data = load_run(output)
    assert data["finished"] and data["modes"] == list(summary["modes"]) and data["reference"] == "plain"
    assert [problem["id"] for problem in data["problems"]] == list(PROBLEMS)
    records = read_records(output)
    for problem in data["problems"]:
        for sample in problem["samples"]:
            record = records[(sample["mode"], problem["id"])]
            assert sample["verdict"] == ("correct" if record["correct"] else "wrong")
            assert sample["curve"] is None  # measured at the endpoint: no per-token replay
            assert sample["endpoint"]["calls"] == record["calls"] and sample["peak"] == record["kv_peak_tokens"]
            if sample["mode"] == "prompted":
                assert sample["endpoint"]["rounds"] == record["rounds"] and sample["mementos"] == record["mementos"]
    page = render_page(data)
    assert page.count("<tr data-problem-id=") == len(PROBLEMS)
    assert page.count("data-verdict=") == len(records)

"""`memento eval grade`: responses made elsewhere, graded and replayed like a run's own samples."""

from __future__ import annotations

import json

import pytest

from memento.cli import main
from memento.eval.evaluate import grade_responses
from memento.eval.run.options import GradeOptions
from memento.eval.run.responses import ResponsesFormatError, read_responses
from memento.format import render_assistant
from memento.toy import CHECKPOINT
from memento.toy.task import HELD_OUT_SEED, ToyTask

IDS = {"toy-0", "toy-1"}


def _write(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (['{"id": "toy-0", "response": "x"}', '{"id": "toy-1", "resp'], r"bad.jsonl:2: invalid JSON"),
        ([{"id": "toy-0"}], r"bad.jsonl:1: missing field 'response'"),
        ([{"response": "x"}], r"bad.jsonl:1: missing field 'id'"),
        ([[1, 2]], r"bad.jsonl:1: expected an object"),
        ([{"id": "toy-7", "response": "x"}], r"bad.jsonl:1: problem id 'toy-7' is not in the benchmark"),
        ([{"id": "toy-0", "response": 3}], r"bad.jsonl:1: field 'response' should be text"),
        ([{"id": "toy-0", "response": "x", "sample": -1}], r"bad.jsonl:1: field 'sample' should be an integer"),
        (
            [{"id": "toy-0", "response": "x", "sample": 1}, {"id": "toy-0", "response": "y", "sample": 1}],
            r"bad.jsonl:2: mode 'memento', problem 'toy-0', sample 1 repeats line 1",
        ),
    ],
)
def test_bad_lines_name_the_file_and_line(tmp_path, rows, message):
    with pytest.raises(ResponsesFormatError, match=message):
        read_responses(_write(tmp_path / "bad.jsonl", rows), IDS)


def test_samples_are_numbered_per_mode_and_problem(tmp_path):
    rows = read_responses(
        _write(
            tmp_path / "r.jsonl",
            [
                {"id": "toy-0", "response": "a"},
                {"id": "toy-0", "response": "b"},
                {"id": "toy-0", "response": "c", "mode": "no_eviction"},
                {"id": "toy-1", "response": "d"},
            ],
        ),
        IDS,
    )
    assert [(r["mode"], r["id"], r["sample"]) for r in rows] == [
        ("memento", "toy-0", 0),
        ("memento", "toy-0", 1),
        ("no_eviction", "toy-0", 0),
        ("memento", "toy-1", 0),
    ]


def test_grading_hand_written_toy_responses(tmp_path):
    examples = ToyTask().examples(2, HELD_OUT_SEED)
    right = [render_assistant(trace) for _, trace in examples]
    wrong = right[1].rsplit("</think>", 1)[0] + "</think>\n\n" + str((int(examples[1][1].answer) + 1) % 10)
    responses = _write(
        tmp_path / "responses.jsonl",
        [
            {"id": "toy-0", "response": right[0]},
            {"id": "toy-1", "response": wrong},
            {"id": "toy-0", "response": right[0], "mode": "no_eviction"},
            {"id": "toy-1", "response": right[1], "mode": "no_eviction"},
        ],
    )
    options = GradeOptions(
        benchmark="toy", responses=str(responses), limit=2, tokenizer=str(CHECKPOINT), model_config=str(CHECKPOINT)
    )
    summary, records = grade_responses(options)
    memento, plain = summary["modes"]["memento"], summary["modes"]["no_eviction"]
    assert memento["pass_at_1"] == 0.5 and plain["pass_at_1"] == 1.0
    assert memento["format_ok"] == plain["format_ok"] == 1.0 and memento["blocks_mean"] == 5
    assert memento["kv_peak_ratio"] < 0.5 and memento["pass_at_1_gap_pp"] == 50
    assert [r["answer"] for r in records["memento"]] == [examples[0][1].answer, wrong[-1]]
    assert summary["kv_geometry"]["bytes_per_token"] == 2048 and not summary["approximate_tokens"]

    # the command: same JSON on its last stdout line
    assert main(["eval", "grade", "--benchmark", "toy", "--limit", "2", "--responses", str(responses),
                 "--tokenizer", str(CHECKPOINT), "--model-config", str(CHECKPOINT), "--json"]) == 0  # fmt: skip


def test_the_command_prints_one_json_line(tmp_path, capsys):
    _, trace = ToyTask().examples(1, HELD_OUT_SEED)[0]
    responses = _write(tmp_path / "r.jsonl", [{"id": "toy-0", "response": render_assistant(trace)}])
    code = main(["eval", "grade", "--benchmark", "toy", "--limit", "1", "--responses", str(responses), "--json",
                 "--output", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    figures = summary["modes"]["memento"]
    assert summary["benchmark"] == "toy" and figures["pass_at_1"] == 1.0
    for key in ("pass_at_1_stderr", "pass_at_k", "maj_at_k", "format_ok", "tokens_mean", "kv_peak_tokens_mean",
                "kv_peak_bytes_mean", "kv_auc_gb_ktok_mean"):  # fmt: skip
        assert key in figures
    assert summary["approximate_tokens"]  # no --tokenizer: about 4 characters a token
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert written == {"summary.json", "accuracy_vs_kv.png", "kv_peak_cdf.png", "samples.jsonl", "manifest.json"} | {
        "invocations.jsonl"  # the graded records and settings, for `memento eval view`
    }
    (record,) = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert (record["mode"], record["id"], record["correct"]) == ("memento", "toy-0", True)

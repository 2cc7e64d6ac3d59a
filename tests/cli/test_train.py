"""`memento train --data` on OpenMementos rows (JSONL, parquet) with the data-selection flags, and its bad input.

Real parts: a tiny Qwen3 checkpoint saved to disk, real JSONL / parquet files in OpenMementos'
schema, the real `memento` command line. Bad input must be one line and exit code 2.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from memento.cli import main
from memento.format import Block, Trace
from memento.training.openmementos import row_from_trace
from tests.cli.test_bad_input import refused
from tests.conftest import build_tokenizer
from tests.models import save_checkpoint

WORDS = ["add", "3", "and", "4", "to", "get", "7", "so", "the", "sum", "is", "42", "check", "12", "+", "30"]
# six rows: domains alternate math / code, difficulties 1..6
DOMAINS = ["math", "code"] * 3


def _rows(config: str) -> list[dict]:
    rng = random.Random(0)
    sentence = lambda n: " ".join(rng.choice(WORDS) for _ in range(n))  # noqa: E731
    rows = []
    for index, domain in enumerate(DOMAINS):
        trace = Trace(sentence(5), [Block(sentence(10), sentence(3)) for _ in range(2)], answer=sentence(2))
        rows.append(row_from_trace(trace, config=config, domain=domain, source="test", difficulty=index + 1))
    return rows


def _write(rows: list[dict], path: Path) -> Path:
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("base")
    save_checkpoint(directory, build_tokenizer(with_memento_tokens=False), layers=1)
    return directory


def _train(checkpoint: Path, data: Path, output: Path, *flags: str) -> int:
    argv = ["train", "--model", str(checkpoint), "--data", str(data), "--output", str(output), "--stage", "full"]
    return main([*argv, "--epochs", "1", "--batch-size", "2", "--max-length", "256", "--logging-steps", "1", *flags])


@pytest.mark.parametrize(("config", "suffix"), [("default", ".jsonl"), ("full", ".parquet")])
@pytest.mark.parametrize(
    ("flags", "examples"),
    [
        ((), 6),
        (("--data-limit", "4"), 4),
        (("--data-domains", "math"), 3),
        (("--data-domains", "code", "--data-limit", "2"), 2),
        (("--data-difficulty", "2-4,6"), 4),
        (("--data-domains", "math", "--data-difficulty", "3-6"), 2),
    ],
)
def test_openmementos_rows_are_selected_by_the_flags(checkpoint, tmp_path, config, suffix, flags, examples):
    data = _write(_rows(config), tmp_path / f"rows{suffix}")
    assert _train(checkpoint, data, tmp_path / "out", *flags) == 0
    log = json.loads((tmp_path / "out" / "memento_training.json").read_text())
    assert log["examples"] == examples
    assert log["stage"] == "full" and log["rows"] == examples


def test_traces_and_rows_mix_in_one_run(checkpoint, tmp_path):
    rows = _write(_rows("default"), tmp_path / "rows.jsonl")
    traces = tmp_path / "traces.jsonl"  # the data pipeline's records: problem, blocks, mementos, answer
    traces.write_text(json.dumps({"problem": "add 3", "blocks": ["so 7", "is 7"], "mementos": ["7", "7"]}) + "\n")
    argv = ["train", "--model", str(checkpoint), "--data", str(rows), str(traces), "--output", str(tmp_path / "mix")]
    assert main([*argv, "--stage", "full", "--epochs", "1", "--max-length", "256"]) == 0
    assert json.loads((tmp_path / "mix" / "memento_training.json").read_text())["examples"] == 7


def test_missing_data_file_is_one_line(capsys, checkpoint, tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    refused(
        capsys,
        ["train", "--model", str(checkpoint), "--data", str(missing), "--output", str(tmp_path / "o")],
        "--data",
        "nowhere.jsonl",
        "no such file",
    )
    rows = _write(_rows("default"), tmp_path / "rows.jsonl")
    argv = ["train", "--model", str(checkpoint), "--data", str(rows), "--output", str(tmp_path / "o")]
    refused(capsys, [*argv, "--eval-data", str(missing)], "--eval-data", "nowhere.jsonl")
    assert not (tmp_path / "o").exists()  # refused before any work


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--data-limit", "0"), "data limit must be >= 1"),
        (("--data-difficulty", "hard"), "difficulty filter 'hard'"),
        (("--data-config", "mini"), "invalid choice"),
    ],
)
def test_bad_selection_is_one_line(capsys, checkpoint, tmp_path, flags, expected):
    rows = _write(_rows("default"), tmp_path / "rows.jsonl")
    argv = ["train", "--model", str(checkpoint), "--data", str(rows), "--output", str(tmp_path / "o"), *flags]
    if expected == "invalid choice":  # argparse's own refusal: usage line + error line, exit 2
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and expected in capsys.readouterr().err
        return
    refused(capsys, argv, expected)


def test_a_filter_that_keeps_nothing_is_one_line(capsys, checkpoint, tmp_path):
    rows = _write(_rows("default"), tmp_path / "rows.jsonl")
    argv = ["train", "--model", str(checkpoint), "--data", str(rows), "--output", str(tmp_path / "o")]
    refused(capsys, [*argv, "--data-domains", "biology"], "no training examples left", "rows.jsonl")


def test_bad_model_files_are_one_line(capsys, tmp_path):
    rows = _write(_rows("default"), tmp_path / "rows.jsonl")
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a gguf file at all")
    tail = ["--data", str(rows), "--output", str(tmp_path / "o")]
    refused(capsys, ["train", "--model", str(fake), *tail], "model.gguf", "not a GGUF file")
    refused(capsys, ["train", "--model", str(tmp_path / "none"), *tail], "none", "no such file")
    (tmp_path / "empty").mkdir()
    refused(capsys, ["train", "--model", str(tmp_path / "empty"), *tail], "empty", "no config.json")
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"\0" * 8)
    refused(capsys, ["train", "--model", str(weights), *tail], "model.bin", "unsupported model file")


def _hub_layout(rows_default: list[dict], rows_full: list[dict], root: Path) -> Path:
    """A folder laid out as the hub repository (README configs, data/ default, full/ full)."""
    for name, rows in (("data", rows_default), ("full", rows_full)):
        (root / name).mkdir(parents=True)
        _write(rows, root / name / "train-00000-of-00001.parquet")
    (root / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"
        "  default: true\n- config_name: full\n  data_files:\n  - split: train\n    path: full/train-*\n---\n"
    )
    return root


@pytest.mark.parametrize(("config", "math_rows"), [("default", 2), ("full", 3)])
def test_a_hub_layout_folder_through_datasets(checkpoint, tmp_path, config, math_rows):
    # the default config holds the first three rows (math, code, math), the full config all six
    root = _hub_layout(_rows("default")[:3], _rows("full"), tmp_path / "OpenMementos")
    assert _train(checkpoint, root, tmp_path / "out", "--data-config", config, "--data-domains", "math") == 0
    assert json.loads((tmp_path / "out" / "memento_training.json").read_text())["examples"] == math_rows


@pytest.mark.slow
def test_a_hub_name_without_the_hub_is_one_line(checkpoint, tmp_path):
    """By name the data comes through `datasets`; offline (HF_HUB_OFFLINE) that fails in one line saying what to do."""
    argv = ["train", "--model", str(checkpoint), "--data", "microsoft/OpenMementos", "--output", str(tmp_path / "o")]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    result = subprocess.run(
        [sys.executable, "-m", "memento.cli", *argv], capture_output=True, text=True, env=environment, timeout=300
    )
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("Loading weights")]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "could not read microsoft/OpenMementos" in lines[0], result.stderr
    assert lines[0].endswith("without the hub, pass a local .parquet/.jsonl download")

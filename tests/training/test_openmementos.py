"""OpenMementos in both configs, as JSONL, parquet and a hub-layout folder read through `datasets`,
gives exactly the training tensors of the same traces given as the authors' files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from memento.config import MementoConfig
from memento.format import SpecialIds, load_traces
from memento.training import MementoCollator, load_examples
from memento.training.openmementos import FULL_COLUMNS, read_rows, row_from_trace, trace_from_row
from memento.training.sources import DataSelection, location_kind, read_traces
from tests.conftest import EXAMPLES

DATA = Path(__file__).parent / "data"
ORDER = ["memento_trace_response.json", "memento_trace_code.json", "memento_trace_science.json"]  # the files' rows
SRC = Path(__file__).resolve().parents[2] / "src"


def _jsonl(config: str) -> Path:
    return DATA / f"openmementos_{config}.jsonl"


def _parquet(config: str, directory: Path) -> Path:
    import pyarrow as arrow
    import pyarrow.parquet as parquet

    rows = [json.loads(line) for line in _jsonl(config).read_text().splitlines()]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "train-00000-of-00001.parquet"
    parquet.write_table(arrow.Table.from_pylist(rows), path)
    return path


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory) -> Path:
    """A local folder laid out as the hub repository: README configs, data/ (default) and full/ (full)."""
    root = tmp_path_factory.mktemp("OpenMementos")
    _parquet("default", root / "data")
    _parquet("full", root / "full")
    (root / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"
        "  default: true\n- config_name: full\n  data_files:\n  - split: train\n    path: full/train-*\n---\n"
    )
    return root


def _tensors(examples, tokenizer):
    config = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)
    collator = MementoCollator(SpecialIds.from_tokenizer(tokenizer), config, tokenizer.pad_token_id)
    return [collator([{"input_ids": e.input_ids, "labels": e.labels}]) for e in examples]


def _assert_same_training_data(examples, reference, tokenizer):
    assert len(examples) == len(reference) == 3
    for ours, theirs in zip(examples, reference, strict=True):
        assert ours.input_ids == theirs.input_ids and ours.labels == theirs.labels
    for ours, theirs in zip(_tensors(examples, tokenizer), _tensors(reference, tokenizer), strict=True):
        assert ours.keys() == theirs.keys() == {"input_ids", "labels", "position_ids", "hidden_from"}
        assert all(torch.equal(ours[key], theirs[key]) for key in ours)


@pytest.fixture(scope="module")
def reference(tokenizer):
    return load_examples([EXAMPLES / name for name in ORDER], tokenizer)[0]


@pytest.mark.parametrize("config", ["default", "full"])
def test_jsonl_gives_the_same_tensors_as_the_traces(tokenizer, reference, config):
    examples, stats = load_examples([_jsonl(config)], tokenizer)
    _assert_same_training_data(examples, reference, tokenizer)
    assert stats.examples == 3 and not stats.dropped


@pytest.mark.parametrize("config", ["default", "full"])
def test_parquet_gives_the_same_tensors(tokenizer, reference, config, tmp_path):
    examples, _ = load_examples([_parquet(config, tmp_path)], tokenizer)
    _assert_same_training_data(examples, reference, tokenizer)


@pytest.mark.parametrize("config", ["default", "full"])
def test_hub_layout_folder_through_datasets(tokenizer, reference, hub_folder, config):
    columns = set(next(read_rows(hub_folder, config=config))[1])
    assert columns == (set(FULL_COLUMNS) if config == "full" else set(FULL_COLUMNS[:5]))
    examples, _ = load_examples([hub_folder], tokenizer, selection=DataSelection(config=config))
    _assert_same_training_data(examples, reference, tokenizer)


def test_rows_round_trip_and_full_columns_describe_the_response():
    for name in ORDER:
        ((_, trace),) = load_traces(EXAMPLES / name)
        row = row_from_trace(trace, config="full", domain="math", source="s", difficulty=3)
        assert trace_from_row(row, source=name) == trace
        assert len(row["blocks"]) == len(row["block_summaries"]) == len(trace.blocks)
        for (start, end), block, summary in zip(row["blocks"], trace.blocks, row["block_summaries"], strict=True):
            assert "".join(row["sentences"][start : end + 1]) == block.reasoning
            assert summary == block.memento
        assert row["blocks"][-1][1] == len(row["sentences"]) - 1


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (DataSelection(domains="math,science"), ["math", "science"]),
        (DataSelection(domains="CODE"), ["code"]),
        (DataSelection(sources="GPQA Diamond"), ["science"]),
        (DataSelection(difficulty="6-7"), ["code", "science"]),
        (DataSelection(difficulty="8,1-2"), ["math"]),
        (DataSelection(limit=2), ["math", "code"]),
        (DataSelection(domains="code,science", limit=1), ["code"]),
        (DataSelection(domains="biology"), []),
    ],
)
def test_filters_and_limit(selection, expected, hub_folder):
    for location in (_jsonl("default"), hub_folder):
        assert [t.metadata["domain"] for _, t in read_traces([location], selection)] == expected


def test_the_limit_stops_reading(tmp_path):
    broken = tmp_path / "rows.jsonl"
    lines = _jsonl("default").read_text().splitlines()
    broken.write_text("\n".join([lines[0], "{not json"]) + "\n")
    assert len(read_traces([broken], DataSelection(limit=1))) == 1  # the bad second line is never read
    with pytest.raises(ValueError, match=r"rows\.jsonl:2"):
        read_traces([broken])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"limit": 0}, "data limit must be >= 1"),
        ({"config": "mini"}, "data config must be one of"),
        ({"difficulty": "hard"}, "expected N, A-B"),
    ],
)
def test_bad_selection(arguments, message):
    with pytest.raises(ValueError, match=message):
        DataSelection(**arguments)


def test_location_kinds(tmp_path, hub_folder):
    assert location_kind("microsoft/OpenMementos") == "hub"
    assert location_kind(hub_folder) == "folder"
    assert location_kind(_parquet("default", tmp_path)) == "parquet"
    assert location_kind(_jsonl("full")) == "rows"
    assert location_kind(EXAMPLES / ORDER[0]) == "traces"
    with pytest.raises(FileNotFoundError, match="no such file, folder or hub dataset name"):
        location_kind("data/missing.jsonl")  # a path, not a hub name
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.txt").write_text("no data here")
    with pytest.raises(ValueError, match="directory without dataset files"):
        location_kind(tmp_path / "notes")


def test_bad_sources_are_one_line(tmp_path, hub_folder):
    with pytest.raises(FileNotFoundError, match="no such file, folder or hub dataset name"):
        read_traces([tmp_path / "missing.jsonl"])
    table = tmp_path / "other.parquet"
    import pyarrow as arrow
    import pyarrow.parquet as parquet

    parquet.write_table(arrow.Table.from_pylist([{"question": "q"}]), table)
    with pytest.raises(ValueError, match=r"other\.parquet: no column \['problem', 'response'\]"):
        read_traces([table])
    (tmp_path / "junk.parquet").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable parquet file"):
        read_traces([tmp_path / "junk.parquet"])
    with pytest.raises(ValueError, match=r"split 'test'.*without the hub, pass a local"):
        read_traces([hub_folder], DataSelection(split="test"))


@pytest.mark.slow
def test_hub_name_without_the_hub_is_one_line():
    """By name, `datasets` is asked; offline it fails fast (HF_HUB_OFFLINE) and we say what to do instead."""
    code = (
        "from memento.training.sources import read_traces\n"
        "try:\n    read_traces(['microsoft/OpenMementos'])\n"
        "except ValueError as error:\n    print(error)\n"
    )
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)
    line = result.stdout.strip()
    assert "\n" not in line
    assert line.startswith("could not read microsoft/OpenMementos (config 'default', split 'train') through datasets")
    assert line.endswith("without the hub, pass a local .parquet/.jsonl download")

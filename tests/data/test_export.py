"""`memento data export --format openmementos`: the released schema, read by `datasets`, trained on identically."""

from __future__ import annotations

import json

import pytest
import torch

from memento.cli import main
from memento.format import SpecialIds
from memento.training.collator import MementoCollator
from memento.training.data import load_examples
from memento.training.openmementos import FULL_COLUMNS
from tests.conftest import EXAMPLES
from tests.data.test_build import OPTIONS, _write_input


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A build folder from real traces (offline) and a few scripted ones with source and difficulty."""
    folder = tmp_path_factory.mktemp("export")
    data = folder / "in.jsonl"
    _write_input(
        data,
        2,
        {
            "task_id": "sci",
            "problem": "p",
            "domain": "science",
            "source": "gpqa",
            "difficulty": 7,
            "cot": "<think>" + " ".join(f"We check case {i}, so y{i} = {i}." for i in range(40)) + "</think>",
        },
    )
    real = (EXAMPLES / "openthoughts_example_trace.jsonl").read_text()
    data.write_text(data.read_text() + real)
    out = folder / "out"
    flags = ("--min-block-tokens", str(OPTIONS.min_block_tokens), "--min-blocks", "2")
    assert main(["data", "build", "--input", str(data), "--output-dir", str(out), "--offline", *flags]) == 0
    return out


def test_export_writes_openmementos_full_rows_that_datasets_reads(built, tmp_path, capsys):
    output = tmp_path / "om.parquet"
    assert main(["data", "export", str(built), "--format", "openmementos", "--output", str(output)]) == 0
    assert f"4 rows in OpenMementos' 'full' schema -> {output}" in capsys.readouterr().out
    import datasets

    rows = datasets.load_dataset("parquet", data_files=str(output), split="train")
    assert tuple(rows.column_names) == FULL_COLUMNS
    records = {r["task_id"]: r for r in map(json.loads, (built / "records.jsonl").read_text().splitlines())}
    by_problem = {r["problem"]: r for r in records.values()}
    for row in rows:
        record = by_problem[row["problem"]]
        assert row["response"].startswith("<think>") and record["text"].strip() in row["response"]
        assert row["sentences"] == record["sentences"] and row["block_summaries"] == record["mementos"]
        assert row["blocks"] == [list(r) for r in record["block_ranges"]]
        # every block's sentences give the block (the pipeline's own split)
        for (a, b), block in zip(row["blocks"], record["blocks"], strict=True):
            assert "".join(row["sentences"][a : b + 1]).strip() == block
    science = next(row for row in rows if row["domain"] == "science")
    assert (science["source"], science["difficulty"]) == ("gpqa", 7)
    assert {row["source"] for row in rows if row["domain"] != "science"} >= {"memento-data-build"}


def test_training_on_the_export_gives_the_same_tensors_as_on_the_folder(built, tmp_path, tokenizer):
    output = tmp_path / "om.parquet"
    assert main(["data", "export", str(built), "--output", str(output), "--config", "default"]) == 0
    from memento.cli.train import check_data_location

    assert check_data_location(str(output), "--data") == "parquet"  # what `memento train --data` sees
    special = SpecialIds.from_tokenizer(tokenizer)
    collate = MementoCollator(special, None, tokenizer.pad_token_id)
    from memento.config import MementoConfig

    evicting = MementoCollator(special, MementoConfig(mask_delimiters=False), tokenizer.pad_token_id)
    folder, _ = load_examples([built / "records.jsonl"], tokenizer, max_length=8192)
    exported, _ = load_examples([output], tokenizer, max_length=8192)
    assert len(folder) == len(exported) == 4
    for collator in (collate, evicting):
        ours, theirs = collator(folder), collator(exported)
        assert sorted(ours) == sorted(theirs)
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), key
    assert "hidden_from" in evicting(folder) and (collate(folder)["input_ids"] == special.summary_end).sum() > 8


def test_export_refuses_bad_locations_in_one_line(built, tmp_path, capsys):
    assert main(["data", "export", str(tmp_path), "--output", str(tmp_path / "x.parquet")]) == 2
    assert "no records.jsonl in this directory" in capsys.readouterr().err
    assert main(["data", "export", str(built), "--output", str(tmp_path / "x.csv")]) == 2
    assert "unknown file type '.csv'; use one of parquet" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()

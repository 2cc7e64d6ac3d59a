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


def _damaged_folder(built, tmp_path, damage) -> tuple:
    """A copy of the built folder whose first record is `damage(record)` (a JSON value written as is)."""
    folder = tmp_path / "damaged"
    folder.mkdir()
    lines = (built / "records.jsonl").read_text().splitlines()
    lines[0] = json.dumps(damage(json.loads(lines[0])))
    (folder / "records.jsonl").write_text("\n".join(lines) + "\n")
    return folder, len(lines)


def _without_first_memento(record: dict) -> dict:
    text = record["text"]
    start, end = text.index("<|summary_start|>"), text.index("<|summary_end|>") + len("<|summary_end|>")
    return {**record, "text": text[:start] + text[end:]}


MALFORMED = [
    (lambda r: {**r, "sentences": None}, "sentences: expected a list, got null"),
    (lambda r: [r], "expected a JSON object, got a list"),
    (lambda r: {**r, "text": 5}, "text: expected a string, got a number"),
    (lambda r: {**r, "mementos": r["mementos"][:-1]}, "expected one range and one memento per block"),
    (_without_first_memento, "records.jsonl:1: text: offset"),
    (lambda r: {**r, "mementos": ["", *r["mementos"][1:]]}, "mementos[0]: empty"),
    (lambda r: {**r, "blocks": "one block"}, "blocks: expected a list, got a string"),
    (lambda r: {k: v for k, v in r.items() if k != "problem"}, "problem: missing, expected a string"),
    (lambda r: {**r, "block_ranges": [[5, 2], *r["block_ranges"][1:]]}, "block_ranges[0]: [5, 2] is not a range"),
]


@pytest.mark.parametrize(("damage", "expected"), MALFORMED)
def test_export_refuses_malformed_records_or_skips_them_with_a_count(built, tmp_path, capsys, damage, expected):
    """Item 7: each record is checked against the record schema; a malformed one is never written: refused in one
    line naming file:line and field (nothing written), or with --skip-malformed left out and counted."""
    folder, total = _damaged_folder(built, tmp_path, damage)
    output = tmp_path / "om.parquet"
    assert main(["data", "export", str(folder), "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"1 of {total} records are malformed, nothing written" in err and "records.jsonl:1: " in err, err
    assert expected in err, err
    assert not output.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["damaged"]
    assert main(["data", "export", str(folder), "--output", str(output), "--skip-malformed"]) == 0
    out = capsys.readouterr().out
    assert f"{total - 1} rows in OpenMementos' 'full' schema" in out and "1 malformed records left out" in out
    import pyarrow.parquet as parquet

    problems = parquet.read_table(output).column("problem").to_pylist()
    wanted = [json.loads(line)["problem"] for line in (built / "records.jsonl").read_text().splitlines()[1:]]
    assert problems == wanted  # the others, whole and in order


def test_export_of_a_folder_where_every_trace_failed_says_so(tmp_path, capsys):
    """Item 14: a folder with failures and no record is reported as such (how many, where, the first reason), and
    once a retry succeeds failures.jsonl lists only the traces that still have no record."""
    data, out = tmp_path / "in.jsonl", tmp_path / "out"
    empty = [{"task_id": f"t{i}", "problem": f"p{i}", "cot": "<think> </think>"} for i in range(3)]
    data.write_text("".join(json.dumps(line) + "\n" for line in empty))
    flags = ("--offline", "--min-block-tokens", str(OPTIONS.min_block_tokens), "--min-blocks", "2")
    assert main(["data", "build", "--input", str(data), "--output-dir", str(out), *flags]) == 1
    capsys.readouterr()
    assert main(["data", "export", str(out), "--output", str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "all 3 traces built there failed" in err, err
    assert str(out / "failures.jsonl") in err and "empty chain of thought" in err
    assert not (tmp_path / "x.parquet").exists()

    _write_input(data, 2, {"task_id": "t2", "problem": "p2", "cot": "<think> </think>"})  # t0, t1 now whole
    assert main(["data", "build", "--input", str(data), "--output-dir", str(out), *flags]) == 1
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["task_id"] for f in failures] == ["t2", "t2"]  # the recovered t0, t1 dropped; t2's two tries kept
    capsys.readouterr()
    assert main(["data", "export", str(out), "--output", str(tmp_path / "x.parquet")]) == 0
    printed = capsys.readouterr().out
    assert "2 rows in OpenMementos' 'full' schema" in printed
    assert f"1 traces of this folder failed and have no record (reasons in {out / 'failures.jsonl'})" in printed

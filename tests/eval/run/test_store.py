"""The run's sample store: appended whole lines survive a kill, a torn last line is redone, settings are kept."""

from __future__ import annotations

import json

import pytest

from memento.eval.run.store import MANIFEST_FILE, SAMPLES_FILE, SampleStore, StoreError, check_manifest


def _record(mode: str, problem: str, sample: int, **extra: object) -> dict:
    return {"mode": mode, "id": problem, "sample": sample, "response": "r", **extra}


def test_appended_samples_are_read_back_by_key(tmp_path):
    store = SampleStore(tmp_path)
    store.append([_record("memento", "p1", 0), _record("memento", "p1", 1)])
    store.append([_record("no_eviction", "p1", 0, correct=True)])
    again = SampleStore(tmp_path)
    assert len(again) == 3
    assert ("memento", "p1", 1) in again and ("no_eviction", "p1", 0) in again
    assert ("memento", "p2", 0) not in again
    assert [r["sample"] for r in again.for_mode("memento")] == [0, 1]


def test_a_torn_last_line_is_dropped_and_the_file_repaired(tmp_path):
    SampleStore(tmp_path).append([_record("memento", "p1", 0), _record("memento", "p1", 1)])
    path = tmp_path / SAMPLES_FILE
    whole = path.read_bytes()
    torn = json.dumps(_record("memento", "p2", 0)).encode()[:17]
    path.write_bytes(whole + torn)  # a kill in the middle of a write
    store = SampleStore(tmp_path)
    assert len(store) == 2 and ("memento", "p2", 0) not in store
    assert path.read_bytes() == whole
    store.append([_record("memento", "p2", 0)])
    assert len(SampleStore(tmp_path)) == 3


def test_a_whole_record_without_its_newline_is_redone_not_glued_to_the_next(tmp_path):
    path = tmp_path / SAMPLES_FILE
    path.write_text(json.dumps(_record("memento", "p1", 0)) + "\n" + json.dumps(_record("memento", "p1", 1)))
    store = SampleStore(tmp_path)
    assert len(store) == 1
    store.append([_record("memento", "p1", 1)])
    assert [json.loads(line)["sample"] for line in path.read_text().splitlines()] == [0, 1]


def test_a_broken_line_in_the_middle_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / SAMPLES_FILE
    path.write_text(json.dumps(_record("memento", "p1", 0)) + "\n{not json\n" + json.dumps(_record("m", "p", 1)) + "\n")
    with pytest.raises(StoreError, match=rf"{SAMPLES_FILE}:2: not a sample record"):
        SampleStore(tmp_path)


def test_the_manifest_refuses_other_settings_and_accepts_new_modes(tmp_path):
    manifest = {"model": "m", "sampling": {"temperature": 0.6}, "modes": {"memento": {"config": {"k": 0}}}}
    check_manifest(tmp_path, manifest)
    check_manifest(tmp_path, manifest)  # the same run resumes
    check_manifest(tmp_path, {**manifest, "modes": {"no_eviction": {"config": {"k": -1}}}})
    recorded = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert set(recorded["modes"]) == {"memento", "no_eviction"}
    with pytest.raises(StoreError, match="sampling="):
        check_manifest(tmp_path, {**manifest, "sampling": {"temperature": 0.0}})
    with pytest.raises(StoreError, match="mode 'memento' ran with other settings"):
        check_manifest(tmp_path, {**manifest, "modes": {"memento": {"config": {"k": 1}}}})

"""Hub model ids wherever a model is named (issue 33 item 1), resolved offline from a Hugging Face cache in the
hub's own layout (blobs, snapshots/<commit>, refs/main), as transformers and vLLM resolve them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memento.hub import parse_hub_id
from memento.toy import CHECKPOINT
from tests.conftest import REAL_TRACES

REPO = "memento-tests/toy"
PROMPT = "sum mod 10: a:3 b:4 c:5 d:1"


def write_hub_cache(cache: Path, repo: str, files: Path, commit: str) -> Path:
    """`files` as the snapshot `commit` of `repo` in the hub's cache layout; refs/main points at it."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / commit
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    for file in sorted(files.iterdir()):
        data = file.read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> tuple[Path, str]:
    cache = tmp_path_factory.mktemp("hf") / "hub"
    commit = "a" * 40
    write_hub_cache(cache, REPO, CHECKPOINT, commit)
    return cache, commit


def memento(cache: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "memento.cli", *argv], capture_output=True, text=True, env=env, timeout=300, cwd=cache
    )


def test_generate_takes_a_hub_id_and_answers_as_the_local_folder_does(hub_cache) -> None:
    cache, commit = hub_cache
    common = ("generate", "--prompt", PROMPT, "--max-new-tokens", "40", "--json")
    local = memento(cache, *common, "--model", str(CHECKPOINT))
    by_id = memento(cache, *common, "--model", REPO)
    by_commit = memento(cache, *common, "--model", f"{REPO}@{commit}")
    for done in (local, by_id, by_commit):
        assert done.returncode == 0, done.stderr[-2000:]
    text = json.loads(local.stdout.splitlines()[-1])["text"]
    assert text and json.loads(by_id.stdout.splitlines()[-1])["text"] == text
    assert json.loads(by_commit.stdout.splitlines()[-1])["text"] == text


def test_kv_and_eval_take_hub_ids(hub_cache, tmp_path) -> None:
    cache, _ = hub_cache
    kv = memento(cache, "kv", "--model-config", REPO, "--json", str(REAL_TRACES[0]))
    assert kv.returncode == 0, kv.stderr[-2000:]
    assert json.loads(kv.stdout.splitlines()[-1])["geometry"]["num_layers"] == 4  # the toy model's config
    run = memento(
        cache,
        "eval",
        "--model",
        REPO,
        "--benchmark",
        "toy",
        "--limit",
        "2",
        "--samples",
        "1",
        "--modes",
        "memento",
        "--output",
        str(tmp_path / "run"),
    )
    assert run.returncode == 0, run.stderr[-2000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "snapshots" in json.dumps(manifest)  # the run records the snapshot it really read


@pytest.mark.parametrize("name", ["memento-tests/absent", f"{REPO}@{'b' * 40}"])
def test_an_id_missing_offline_is_one_line_saying_so(hub_cache, name: str) -> None:
    cache, _ = hub_cache
    done = memento(cache, "generate", "--model", name, "--prompt", "x")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert name in line and "HF_HUB_OFFLINE=1" in line and str(cache) in line


def test_local_paths_stay_paths(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert parse_hub_id("runs/typo") is None  # its first part is a local folder: a missing path, not an id
    assert parse_hub_id("./x") is None and parse_hub_id("/abs/x") is None and parse_hub_id("a/b/c") is None
    assert parse_hub_id("Qwen/Qwen3-0.6B") == ("Qwen/Qwen3-0.6B", None)
    assert parse_hub_id("Qwen/Qwen3-0.6B@v1.0") == ("Qwen/Qwen3-0.6B", "v1.0")
    assert parse_hub_id("gpt2") == ("gpt2", None)

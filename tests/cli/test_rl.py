"""`memento rl` from the command line: bad input is one line before any model loads; a tiny real run."""

from __future__ import annotations

import json
import sys

import pytest

from memento.cli import main
from memento.toy.train import CHECKPOINT

CONFIG = '{"enable": true, "keep_last_n_blocks": 0, "mask_delimiters": false}'


def _refused(capsys, argv: list[str], *needles: str) -> None:
    assert main(["rl", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_bad_input_is_one_line(tmp_path, capsys):
    model, out = str(CHECKPOINT), str(tmp_path / "out")
    _refused(capsys, ["--model", model, "--output", out, "--num-generations", "1"], "num_generations must be >= 2")
    _refused(capsys, ["--model", str(tmp_path / "nowhere"), "--output", out], "--model", "nowhere: no such directory")
    _refused(capsys, ["--model", str(tmp_path), "--output", out], "no config.json in this directory")
    missing = str(tmp_path / "x.jsonl")
    _refused(capsys, ["--model", model, "--output", out, "--benchmark", missing], "x.jsonl: no such benchmark file")
    _refused(capsys, ["--model", model, "--output", out, "--benchmark", "math501"], "unknown benchmark 'math501'")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "sum mod 10: a:1"}\n')
    _refused(capsys, ["--model", model, "--output", out, "--benchmark", str(bad)], "row 1: missing field 'answer'")
    _refused(capsys, ["--model", model, "--output", out, "--reward", "code"], "--reward code: problem toy-rl-0-0")
    _refused(capsys, ["--model", model, "--output", out, "--reward", "exact"], "reward must be one of auto, toy")
    _refused(capsys, ["--model", model, "--output", out, "--config", "{keep: 0}"], "--config: ", "not valid JSON")
    _refused(capsys, ["--model", model, "--output", out, "--config", '{"keep": 0}'], "keep: unknown memento config")
    (tmp_path / "file").write_text("x")
    _refused(capsys, ["--model", model, "--output", str(tmp_path / "file" / "o")], "--output", "lies under the file")
    assert not (tmp_path / "out").exists()


def test_without_trl_it_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)  # `import trl` raises ImportError
    _refused(capsys, ["--model", str(CHECKPOINT), "--output", str(tmp_path / "o")], "pip install 'memento[rl]'")


def test_vllm_rollouts_without_vllm_say_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    argv = ["--model", str(CHECKPOINT), "--output", str(tmp_path / "o"), "--rollouts", "vllm"]
    _refused(capsys, argv, "--rollouts vllm needs vLLM", "pip install 'memento[vllm]'")
    monkeypatch.setitem(sys.modules, "vllm", sys.modules.get("os"))  # "installed", but 2 ranks
    monkeypatch.setenv("WORLD_SIZE", "2")
    _refused(capsys, argv, "--rollouts vllm runs one engine in one trainer process")
    with pytest.raises(SystemExit) as exited:  # argparse's own one-line refusal
        main(["rl", *argv[:-1], "sglang"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and "invalid choice: 'sglang'" in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # one CISPO step of the embedded model: ~1 min on a loaded 2-core machine
def test_one_step_on_the_toy_model_saves_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "rl"
    argv = ["rl", "--model", str(CHECKPOINT), "--benchmark", "toy", "--output", str(out), "--config", CONFIG]
    argv += ["--max-steps", "1", "--num-generations", "2", "--prompts-per-step", "1", "--problems", "2"]
    argv += ["--max-completion-length", "24"]
    assert main(argv) == 0
    assert f"-> {out}" in capsys.readouterr().out
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert (out / "tokenizer.json").is_file()
    rollouts = [json.loads(line) for line in (out / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == 2 and all(r["completion_tokens"] == 24 for r in rollouts)
    report = json.loads((out / "memento_rl.json").read_text())
    assert report["options"]["max_steps"] == 1 and report["options"]["num_generations"] == 2
    assert report["memento_config"]["enable"] is True and report["memento_config"]["keep_last_n_blocks"] == 0


@pytest.mark.slow  # the README's RL quickstart as written: one step, ~30 s on a loaded 2-core machine
def test_the_readme_quickstart_fits_completions_to_the_models_context(tmp_path, capsys, caplog):
    """Issue 33 item 9: the default --max-completion-length (1024) plus a prompt exceeds the toy model's 1,024
    positions; the run says so once and caps the completions instead of warning once per prompt."""
    argv = ["rl", "--model", str(CHECKPOINT), "--benchmark", "toy", "--output", str(tmp_path / "rl")]
    argv += ["--num-generations", "2", "--max-steps", "1", "--problems", "4"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    capped = [line for line in err.splitlines() if "completions capped at" in line]
    assert len(capped) == 1 and "the model holds 1024 positions" in capped[0]
    assert not [r for r in caplog.records if "exceed max_position_embeddings" in r.getMessage()]
    assert "exceed max_position_embeddings" not in err

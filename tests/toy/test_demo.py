"""The embedded model and `memento demo` (small numbers of problems; `make demo` runs 300)."""

from __future__ import annotations

import json

import pytest

from memento.cli import main
from memento.toy import CHECKPOINT
from memento.toy.train import train_toy


def test_embedded_checkpoint_is_small_and_loads():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    size = sum(f.stat().st_size for f in CHECKPOINT.iterdir())
    assert size <= 10 * 2**20
    model = AutoModelForCausalLM.from_pretrained(CHECKPOINT, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT, local_files_only=True)
    assert model.config.model_type == "qwen3" and len(tokenizer) <= model.config.vocab_size


@pytest.mark.slow
def test_demo_json_reports_every_mode(capsys, tmp_path):
    plot = tmp_path / "demo.png"
    assert main(["demo", "--json", "--problems", "24", "--batch-size", "12", "--plot", str(plot)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["modes"]) == {"memento", "no_eviction", "restart"}
    for mode in report["modes"].values():
        assert {
            "accuracy",
            "peak_kv_tokens_mean",
            "peak_kv_bytes_mean",
            "auc_gb_ktok_mean",
            "tokens_per_second",
        } <= set(mode)
        assert 0 <= mode["accuracy"] <= 1 and mode["matches_simulator"]  # real cache == memento kv's simulator
    memento, plain = report["modes"]["memento"], report["modes"]["no_eviction"]
    assert memento["accuracy"] >= 0.9  # the trained model solves held-out problems while evicting
    assert plain["accuracy"] >= 0.85  # and stays usable without eviction (mixed stage 2)
    assert memento["peak_kv_tokens_mean"] <= 0.5 * plain["peak_kv_tokens_mean"]
    assert memento["blocks_per_problem"] >= 4
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_generate_uses_the_embedded_model_by_default(capsys):
    assert (
        main(
            [
                "generate",
                "--prompt",
                "sum mod 10: a:3 b:4 c:5 d:1 e:2 f:3 g:9 h:9 i:0 j:1 k:2 l:8 m:6 n:2",
                "--json",
                "--max-new-tokens",
                "400",
            ]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert "<|summary_end|>" in record["text"] and record["evictions"]
    assert record["text"].split("</think>")[1].replace("<|im_end|>", "").strip() == str(55 % 10)


def test_toy_training_runs_the_real_two_stage_path(tmp_path):
    final = train_toy(tmp_path, examples=8, epochs=1, batch_size=8)
    for stage, evicting in (("stage1-full", False), ("stage2-memento", True)):
        log = json.loads((tmp_path / stage / "memento_training.json").read_text())
        assert log["stage"] == ("memento" if evicting else "full")
        assert (log["memento_config"] is not None) == evicting
        assert (tmp_path / stage / "model.safetensors").is_file()
    options = json.loads((tmp_path / "stage2-memento" / "memento_training.json").read_text())["options"]
    assert options["full_attention_fraction"] == 0.3 and options["memento_epochs"] == 2.0
    assert (final / "model.safetensors").is_file() and (final / "tokenizer.json").is_file()

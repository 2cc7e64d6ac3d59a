from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from memento.cli import main
from memento.format import BLOCK_START, SUMMARY_START, THINK_START
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
    assert data["overall"]["num_traces"] == 3 and data["approximate_tokens"] is True
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
    result = subprocess.run([binary, "kv", str(REAL_TRACES[1]), "--json"], capture_output=True, text=True, check=True)
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

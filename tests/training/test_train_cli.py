"""`memento train --stage both` end to end on a tiny model, on CPU."""

from __future__ import annotations

import json
import random
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from memento.cli import main
from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.inference import MementoGenerator
from tests.conftest import build_tokenizer
from tests.models import save_checkpoint

WORDS = ["add", "3", "and", "4", "to", "get", "7", "so", "the", "sum", "is", "42", "check", "12", "+", "30"]


def write_workspace(directory: Path, records: int) -> Path:
    """`directory` with a 1-layer base checkpoint (``base``, no memento tokens yet) and `records` traces
    (``train.jsonl``): what the `memento train` tests start from."""
    save_checkpoint(directory / "base", build_tokenizer(with_memento_tokens=False), layers=1)
    (directory / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _records(records)))
    return directory


def _records(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    sentence = lambda n: " ".join(rng.choice(WORDS) for _ in range(n))  # noqa: E731
    return [
        {
            "problem": sentence(5),
            "blocks": [sentence(12) for _ in range(3)],
            "mementos": [sentence(3) for _ in range(3)],
            "answer": sentence(2),
        }
        for _ in range(count)
    ]


def test_train_both_stages_then_generate(tmp_path):
    base = tmp_path / "base"
    tokenizer = build_tokenizer(with_memento_tokens=False)  # the trainer adds the memento tokens
    save_checkpoint(base, tokenizer, hidden_size=64, heads=4, kv_heads=2)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _records(8)))
    output = tmp_path / "out"
    code = main(
        [
            "train",
            "--model",
            str(base),
            "--data",
            str(data),
            "--output",
            str(output),
            "--stage",
            "both",
            "--epochs",
            "30",
            "--memento-epochs",
            "20",
            "--learning-rate",
            "1e-2",
            "--batch-size",
            "4",
            "--max-length",
            "512",
            "--logging-steps",
            "1",
        ]
    )
    assert code == 0
    for stage, masked in (("stage1-full", None), ("stage2-memento", False)):
        log = json.loads((output / stage / "memento_training.json").read_text())
        losses = [entry["loss"] for entry in log["log_history"] if "loss" in entry]
        assert losses[-1] < losses[0], f"{stage} did not reduce its loss: {losses}"
        assert (log["memento_config"] or {}).get("mask_delimiters") == masked  # qwen3 family: False in stage 2
        assert (output / stage / "tokenizer_config.json").is_file()
    stage1 = json.loads((output / "stage1-full" / "memento_training.json").read_text())["log_history"]
    stage2 = json.loads((output / "stage2-memento" / "memento_training.json").read_text())["log_history"]
    assert stage2[0]["loss"] < stage1[0]["loss"]  # stage 2 starts from stage 1's weights
    assert (stage1[-1]["epoch"], stage2[-1]["epoch"]) == (30, 20)  # --memento-epochs sets stage 2's count
    # the final checkpoint loads with from_pretrained and generates with eviction
    model = AutoModelForCausalLM.from_pretrained(output, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(output, local_files_only=True)
    special_ids = SpecialIds.from_tokenizer(tokenizer)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    generator = MementoGenerator(model, tokenizer, MementoConfig(mask_delimiters=False))
    result = generator.generate("add 3 and 4", max_new_tokens=60)[0]
    assert result.token_ids and result.text
    assert special_ids.block_start in result.token_ids  # it learned to open blocks


def test_train_memento_stage_with_block_sparse_attention(tmp_path):
    base = tmp_path / "base"
    tokenizer = build_tokenizer()
    save_checkpoint(base, tokenizer, layers=1)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _records(4, seed=1)))
    output = tmp_path / "out"
    assert (
        main(
            [
                "train",
                "--model",
                str(base),
                "--data",
                str(data),
                "--output",
                str(output),
                "--stage",
                "memento",
                "--attention",
                "block-sparse",
                "--epochs",
                "4",
                "--learning-rate",
                "1e-2",
                "--batch-size",
                "2",
                "--logging-steps",
                "1",
                "--mask-delimiters",
            ]
        )
        == 0
    )
    log = json.loads((output / "memento_training.json").read_text())
    losses = [entry["loss"] for entry in log["log_history"] if "loss" in entry]
    assert losses[-1] < losses[0] and log["memento_config"]["mask_delimiters"] is True
    assert log["options"]["attention"] == "block-sparse"
    reloaded = AutoModelForCausalLM.from_pretrained(output, local_files_only=True)
    assert reloaded.config._attn_implementation in ("sdpa", "eager")

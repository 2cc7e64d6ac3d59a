"""Loading checkpoints the way users have them: HF directories, .gguf files, and one-line errors otherwise."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from memento.inference import gguf
from memento.inference.loading import load_causal_lm, load_model_and_tokenizer, load_tokenizer, resolve_checkpoint
from tests.models import save_checkpoint
from tests.real_models import smollm2_gguf


@pytest.fixture
def checkpoint(tmp_path: Path, tokenizer) -> Path:
    directory = tmp_path / "checkpoint"
    save_checkpoint(directory, tokenizer)
    return directory


def test_a_checkpoint_directory_loads(checkpoint):
    assert resolve_checkpoint(checkpoint) == checkpoint
    model, tokenizer = load_model_and_tokenizer(checkpoint, device="cpu")
    assert model.dtype == torch.float32 and not model.training
    assert tokenizer.convert_tokens_to_ids("<|summary_end|>") is not None
    assert load_causal_lm(checkpoint, dtype="bf16").dtype == torch.bfloat16


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such file or directory \(expected a Hugging Face"):
        resolve_checkpoint(tmp_path / "nowhere")


def test_directory_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"is not a Hugging Face checkpoint directory \(no config\.json\)$"):
        resolve_checkpoint(tmp_path)


def test_directory_with_several_gguf_files_names_them(tmp_path):
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    with pytest.raises(FileNotFoundError, match=r"several \.gguf files, pass one: a\.gguf, b\.gguf"):
        resolve_checkpoint(tmp_path)


@pytest.mark.parametrize("name", ["model.bin", "weights.pt", "model.safetensors", "README"])
def test_unsupported_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"\0" * 16)
    with pytest.raises(ValueError, match=r"unsupported model file .*expected a Hugging Face checkpoint directory"):
        resolve_checkpoint(tmp_path / name)


def test_gguf_suffix_without_gguf_content(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_text("this is not a model")
    with pytest.raises(ValueError, match=r"model\.gguf: not a GGUF file"):
        resolve_checkpoint(fake)


def test_config_that_is_not_json(checkpoint):
    (checkpoint / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json: not valid JSON"):
        resolve_checkpoint(checkpoint)


def test_checkpoint_without_weights(checkpoint):
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"no weights next to config\.json"):
        resolve_checkpoint(checkpoint)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_safetensors(checkpoint, damage):
    weights = checkpoint / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"definitely not safetensors")
    with pytest.raises(ValueError, match=r"model\.safetensors: not a readable safetensors file \(.+\)$"):
        load_model_and_tokenizer(checkpoint)


def test_a_tokenizer_without_memento_tokens_is_refused(tmp_path):
    from tests.conftest import build_tokenizer

    save_checkpoint(tmp_path, build_tokenizer(with_memento_tokens=False))
    with pytest.raises(ValueError, match="lacks the memento tokens"):
        load_model_and_tokenizer(tmp_path)


@pytest.mark.slow
def test_real_gguf_converts_once_and_reloads_identically(smollm2_checkpoint, smollm2_cache, monkeypatch):
    """SmolLM2-135M-Instruct's GGUF: the cached checkpoint holds exactly the dequantised weights transformers
    reads from the GGUF, with its tokenizer and chat template, and a second load reads the cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_gguf()
    assert smollm2_checkpoint.parent == smollm2_cache / "gguf"
    assert json.loads((smollm2_checkpoint / gguf.MARKER).read_text())["source"] == str(path.resolve())
    assert "quantization_config" not in json.loads((smollm2_checkpoint / "config.json").read_text())

    direct = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    cached = load_causal_lm(smollm2_checkpoint)
    assert type(cached).__name__ == "LlamaForCausalLM" and cached.num_parameters() == direct.num_parameters()
    expected = direct.state_dict()
    reloaded = cached.state_dict()
    assert reloaded.keys() == expected.keys()
    assert all(torch.equal(reloaded[name], expected[name]) for name in expected)

    tokenizer = load_tokenizer(smollm2_checkpoint)
    original = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    text = "<|im_start|>user\nWhat is 12 * 7?<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.encode(text) == original.encode(text)
    assert tokenizer.chat_template == original.chat_template and len(tokenizer) == 49152

    def no_conversion(*args, **kwargs):
        raise AssertionError("the second load must read the cache, not convert again")

    monkeypatch.setattr(gguf, "convert_gguf", no_conversion)
    assert resolve_checkpoint(path) == smollm2_checkpoint
    linked = smollm2_cache / "folder-with-one-gguf"  # a directory holding one .gguf stands for that file
    linked.mkdir(exist_ok=True)
    shutil.copy(path, linked / path.name)
    assert resolve_checkpoint(linked) == smollm2_checkpoint

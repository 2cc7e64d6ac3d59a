"""Options a real run needs, on tiny models: LoRA (+ memento rows, merged), dtype, gradient checkpointing,
resume, held-out eval per epoch, length-grouped batches, attention auto."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, LlamaConfig
from transformers.trainer_pt_utils import LengthGroupedSampler

from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.inference import MementoGenerator
from memento.inference.loading import load_causal_lm, load_model_and_tokenizer, load_tokenizer
from memento.training import TrainOptions, add_memento_tokens, load_examples, train
from memento.training.collator import MementoCollator
from memento.training.trainer import (
    DONE_MARKER,
    ExampleDataset,
    MementoTrainer,
    _arguments,
    memento_attention_mask,
    native_bf16,
    resolve_attention,
)
from tests.conftest import build_tokenizer
from tests.training.test_train_cli import _records

FAST = {"learning_rate": 1e-2, "batch_size": 2, "logging_steps": 1, "max_length": 512}


def _base(directory, *, tied: bool, seed: int = 0):
    """A tiny Llama without the memento tokens (the trainer adds them), saved with its tokenizer."""
    tokenizer = build_tokenizer(with_memento_tokens=False)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=tied,
    )
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _data(tmp_path, count: int = 4, seed: int = 0):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _records(count, seed)))
    return path


def _log(directory):
    return json.loads((directory / DONE_MARKER).read_text())


@pytest.mark.parametrize("tied", [True, False], ids=["tied-head", "separate-head"])
def test_lora_trains_adapters_and_memento_rows_then_merges_into_a_plain_checkpoint(tmp_path, tied):
    base = _base(tmp_path / "base", tied=tied)
    output = tmp_path / "out"
    options = TrainOptions(lora_rank=4, epochs=3, **FAST)
    train(base, [_data(tmp_path)], output, stage="memento", options=options)

    assert (output / "adapter" / "adapter_config.json").is_file()
    with safe_open(str(output / "model.safetensors"), "pt") as weights:
        names = list(weights.keys())
    assert not [name for name in names if "lora" in name or "trainable_tokens" in name]
    log = _log(output)
    assert log["attention_implementation"] == ("flex_attention" if torch.cuda.is_available() else "sdpa")
    merged = load_causal_lm(output)

    # the same starting point: the base with the memento tokens added (seeded, deterministic)
    from peft import PeftModel

    start = load_causal_lm(base)
    tokenizer = load_tokenizer(base)
    memento_ids = add_memento_tokens(start, tokenizer)
    others = [i for i in range(len(tokenizer)) if i not in memento_ids]
    before = {name: tensor.clone() for name, tensor in start.state_dict().items()}
    after = merged.state_dict()
    embedding = "model.embed_tokens.weight"
    assert torch.equal(after[embedding][others], before[embedding][others])
    assert not torch.allclose(after[embedding][memento_ids], before[embedding][memento_ids])
    if not tied:
        assert torch.equal(after["lm_head.weight"][others], before["lm_head.weight"][others])
        assert not torch.allclose(after["lm_head.weight"][memento_ids], before["lm_head.weight"][memento_ids])
    assert not torch.allclose(
        after["model.layers.0.self_attn.q_proj.weight"], before["model.layers.0.self_attn.q_proj.weight"]
    )
    assert torch.equal(after["model.norm.weight"], before["model.norm.weight"])  # not adapted

    # the merged checkpoint computes what base + adapter computes
    adapted = PeftModel.from_pretrained(start, str(output / "adapter")).eval()
    ids = torch.tensor([tokenizer.encode("add 3 and 4<|block_start|> so the sum<|block_end|><|summary_start|>")])
    with torch.no_grad():
        assert (adapted(input_ids=ids).logits - merged.eval()(input_ids=ids).logits).abs().max() < 1e-4

    model, loaded_tokenizer = load_model_and_tokenizer(output, device="cpu")
    result = MementoGenerator(model, loaded_tokenizer, MementoConfig(mask_delimiters=False)).generate(
        "add 3 and 4", max_new_tokens=12
    )[0]
    assert len(result.token_ids) == 12 or result.finish_reason == "stop"


def test_bf16_weights_load_train_and_save_in_bf16(tmp_path):
    base = _base(tmp_path / "base", tied=True)
    output = tmp_path / "out"
    train(base, [_data(tmp_path)], output, stage="full", options=TrainOptions(dtype="bf16", epochs=2, **FAST))
    log = _log(output)
    assert log["weights_dtype"] == "bfloat16"
    losses = [entry["loss"] for entry in log["log_history"] if "loss" in entry]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    with safe_open(str(output / "model.safetensors"), "pt") as weights:
        assert weights.get_tensor("model.embed_tokens.weight").dtype == torch.bfloat16


def test_bf16_autocast_yes_on_cpu_trains_in_bf16_or_says_why_not(tmp_path):
    """--bf16 yes on a CPU: autocast over fp32 weights where the CPU has native bf16, else one clear error."""
    base = _base(tmp_path / "base", tied=True)
    if torch.cuda.is_available():
        pytest.skip("a GPU machine: bf16 there is the GPU's, not the CPU's")
    options = TrainOptions(bf16="yes", dtype="fp32", epochs=1, **FAST)
    if not native_bf16("cpu"):
        with pytest.raises(ValueError, match="native bf16"):
            train(base, [_data(tmp_path)], tmp_path / "out", stage="full", options=options)
        return
    arguments = _arguments(tmp_path / "args", options, memento=False, evaluate=False, weights=torch.float32)
    assert arguments.bf16 and arguments.use_cpu
    train(base, [_data(tmp_path)], tmp_path / "out", stage="both", options=options)  # dense memento mask too
    log = _log(tmp_path / "out")
    assert log["weights_dtype"] == "float32"
    losses = [entry["loss"] for entry in log["log_history"] if "loss" in entry]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    # 'auto' keeps CPU runs in fp32
    assert not _arguments(tmp_path / "a", TrainOptions(), memento=False, evaluate=False, weights=torch.float32).bf16


def test_fp16_needs_adapters():
    with pytest.raises(ValueError, match="fp16 weights train only with adapters"):
        TrainOptions(dtype="fp16")
    assert TrainOptions(dtype="fp16", lora_rank=8).dtype == "fp16"


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path):
    base = _base(tmp_path / "base", tied=False)
    tokenizer = load_tokenizer(base)
    gradients = []
    for checkpointing in (False, True):
        model = load_causal_lm(base)
        add_memento_tokens(model, tokenizer)
        examples, _ = load_examples([_data(tmp_path)], tokenizer)
        collator = MementoCollator(SpecialIds.from_tokenizer(tokenizer), MementoConfig(mask_delimiters=False), 0)
        batch = collator(ExampleDataset(examples))
        batch["attention_mask"] = memento_attention_mask(model, batch.pop("hidden_from"))
        if checkpointing:
            model.gradient_checkpointing_enable({"use_reentrant": False})
        model.train()
        model(**batch).loss.backward()
        gradients.append({name: p.grad.clone() for name, p in model.named_parameters()})
    assert gradients[0].keys() == gradients[1].keys()
    for name, gradient in gradients[0].items():
        assert torch.allclose(gradient, gradients[1][name], atol=1e-6), name
    assert _arguments(
        tmp_path, TrainOptions(gradient_checkpointing=True), memento=True, evaluate=False, weights=torch.float32
    ).gradient_checkpointing


@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    base = _base(tmp_path / "base", tied=True)
    data = _data(tmp_path, count=4)
    options = TrainOptions(epochs=2, save_total_limit=None, **FAST)  # 2 steps an epoch: checkpoint-2, checkpoint-4
    whole = tmp_path / "whole"
    train(base, [data], whole, stage="full", options=options)
    assert sorted(p.name for p in whole.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]

    interrupted = tmp_path / "interrupted"  # as if killed after the first epoch's checkpoint
    interrupted.mkdir()
    shutil.copytree(whole / "checkpoint-2", interrupted / "checkpoint-2")
    resumed_options = TrainOptions(epochs=2, save_total_limit=None, resume=True, **FAST)
    train(base, [data], interrupted, stage="full", options=resumed_options)
    assert _log(interrupted)["resumed_from"].endswith("checkpoint-2")
    with (
        safe_open(str(whole / "model.safetensors"), "pt") as a,
        safe_open(str(interrupted / "model.safetensors"), "pt") as b,
    ):
        names = list(a.keys())
        assert names == list(b.keys())
        for name in names:
            assert torch.allclose(a.get_tensor(name), b.get_tensor(name), atol=1e-6), name
    losses = [e["loss"] for e in _log(interrupted)["log_history"] if "loss" in e]
    assert losses == [e["loss"] for e in _log(whole)["log_history"] if "loss" in e]  # epoch 1 restored, epoch 2 equal


@pytest.mark.slow
def test_held_out_eval_loss_every_epoch(tmp_path):
    base = _base(tmp_path / "base", tied=True)
    output = tmp_path / "out"
    options = TrainOptions(epochs=3, eval_fraction=0.34, **FAST)
    train(base, [_data(tmp_path, count=6)], output, stage="memento", options=options)
    log = _log(output)
    assert (log["examples"], log["eval_examples"]) == (4, 2)
    evaluations = [e for e in log["log_history"] if "eval_loss" in e]
    assert [e["epoch"] for e in evaluations] == [1.0, 2.0, 3.0]
    assert evaluations[-1]["eval_loss"] < evaluations[0]["eval_loss"]


def test_group_by_length_batches_similar_lengths(tmp_path):
    base = _base(tmp_path / "base", tied=True)
    tokenizer = load_tokenizer(base)
    model = load_causal_lm(base)
    add_memento_tokens(model, tokenizer)
    examples, _ = load_examples([_data(tmp_path, count=8)], tokenizer)
    options = TrainOptions(group_by_length=True)
    trainer = MementoTrainer(
        model=model,
        args=_arguments(tmp_path, options, memento=False, evaluate=False, weights=torch.float32),
        train_dataset=ExampleDataset(examples),
        data_collator=MementoCollator(SpecialIds.from_tokenizer(tokenizer), None, 0),
        processing_class=tokenizer,
    )
    assert isinstance(trainer._get_train_sampler(), LengthGroupedSampler)
    with pytest.raises(ValueError, match="packing or group_by_length"):
        TrainOptions(packing=True, group_by_length=True)


def test_attention_auto_is_block_sparse_on_cuda_only():
    assert resolve_attention("auto") == ("block-sparse" if torch.cuda.is_available() else "dense")
    assert resolve_attention("dense") == "dense"


@pytest.mark.slow
def test_packed_training_runs_both_stages(tmp_path):
    base = _base(tmp_path / "base", tied=True)
    output = tmp_path / "out"
    options = TrainOptions(epochs=2, memento_epochs=2, packing=True, attention="block-sparse", **FAST)
    train(base, [_data(tmp_path, count=6)], output, stage="both", options=options)
    for stage in ("stage1-full", "stage2-memento"):
        log = _log(output / stage)
        assert log["rows"] < log["examples"] == 6  # packed
        losses = [e["loss"] for e in log["log_history"] if "loss" in e]
        assert all(torch.isfinite(torch.tensor(losses)))
    assert load_causal_lm(output).config._attn_implementation == "sdpa"

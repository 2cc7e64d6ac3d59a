"""`memento train` across real processes on CPU (torchrun, gloo; DeepSpeed ZeRO-3; accelerate + FSDP).

Two processes at per-device batch 1 must train the same model as one process at batch 2 (the same
global batch): per-step losses within 1e-4 and final weights close, for `--stage both` with the dense
mask and `--full-attention-fraction 0.5`, with the block-sparse mask and LoRA, and under ZeRO-3.
Each variant runs once (module fixture) and every assertion reads its outputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from memento.cli import main
from memento.inference.loading import load_causal_lm, load_tokenizer
from memento.training.tokens import SEED_WORDS, add_memento_tokens, seed_rows
from tests.conftest import build_tokenizer
from tests.models import save_checkpoint
from tests.training.test_train_cli import _records

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FLAGS = ["--stage", "both", "--epochs", "2", "--max-length", "256", "--logging-steps", "1", "--learning-rate", "1e-2"]
VARIANTS = {
    "dense-fraction": ["--attention", "dense", "--full-attention-fraction", "0.5"],
    "block-sparse-lora": ["--attention", "block-sparse", "--lora-rank", "4"],
}
ZERO3 = json.loads((ROOT / "examples" / "deepspeed_zero3.json").read_text())  # the README's config
# (no "optimizer" in it: DeepSpeed's own would be compiled on first use; the Trainer's AdamW is handed over)


def _environment() -> dict[str, str]:
    launch = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in launch and not k.startswith("ACCELERATE_")}
    pythonpath = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath, "MEMENTO_TEST_NO_SHM": "1"}


def torchrun(script: Path, *arguments: str) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node 2 script arguments` on CPU; its output, checked."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*command, str(script), *arguments], env=_environment(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _losses(output: Path, stage: str) -> list[float]:
    log = json.loads((output / stage / "memento_training.json").read_text())["log_history"]
    return [entry["loss"] for entry in log if "loss" in entry]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("distributed")
    save_checkpoint(directory / "base", build_tokenizer(with_memento_tokens=False), layers=1)
    (directory / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _records(8)))
    (directory / "zero3.json").write_text(json.dumps(ZERO3))
    return directory


def _common(workspace: Path, output: Path) -> list[str]:
    return ["--model", str(workspace / "base"), "--data", str(workspace / "train.jsonl"), "--output", str(output)]


@pytest.fixture(scope="module")
def runs(workspace: Path) -> dict[str, dict[str, Path]]:
    """Per variant: 'one' (this process, batch 2) and 'two' (torchrun, 2 x batch 1); 'zero3' also as 'two'."""
    outputs: dict[str, dict[str, Path]] = {}
    for name, flags in VARIANTS.items():
        one, two = workspace / f"{name}-one", workspace / f"{name}-two"
        assert main(["train", *_common(workspace, one), *FLAGS, *flags, "--batch-size", "2"]) == 0
        result = torchrun(
            HERE / "launch_memento.py", "train", *_common(workspace, two), *FLAGS, *flags, "--batch-size", "1"
        )
        assert result.stdout.count("model and tokenizer saved to") == 1  # rank 0 alone reports (and writes)
        outputs[name] = {"one": one, "two": two}
    zero3 = workspace / "zero3-two"
    deepspeed = ["--deepspeed", str(workspace / "zero3.json")]
    flags = [*FLAGS, *VARIANTS["dense-fraction"], "--batch-size", "1", *deepspeed]
    torchrun(HERE / "launch_memento.py", "train", *_common(workspace, zero3), *flags)
    outputs["zero3"] = {"one": outputs["dense-fraction"]["one"], "two": zero3}
    return outputs


def _assert_same_training(one: Path, two: Path) -> None:
    for stage in ("stage1-full", "stage2-memento"):
        single, double = _losses(one, stage), _losses(two, stage)
        assert len(single) == len(double) == 8  # 8 examples, global batch 2, 2 epochs
        assert max(abs(a - b) for a, b in zip(single, double, strict=True)) < 1e-4, (stage, single, double)
        record = json.loads((two / stage / "memento_training.json").read_text())
        assert record["processes"] == 2
    single, double = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert single.keys() == double.keys()
    for name, tensor in single.items():
        torch.testing.assert_close(double[name], tensor, atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.parametrize("variant", [*VARIANTS, "zero3"])
def test_two_processes_train_the_same_model_as_one(runs, variant):
    _assert_same_training(runs[variant]["one"], runs[variant]["two"])


def test_lora_adapters_are_written_once_per_stage(runs):
    for stage in ("stage1-full", "stage2-memento"):
        adapter = runs["block-sparse-lora"]["two"] / stage / "adapter"
        assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()


def test_a_checkpoint_written_by_rank_zero_generates(runs, capsys):
    model = runs["dense-fraction"]["two"]
    argv = ["generate", "--model", str(model), "--prompt", "add 3 and 4", "--max-new-tokens", "8", "--json"]
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    assert 1 <= len(record["token_ids"]) <= 8 and record["finish_reason"] in ("stop", "length")


def test_zero3_initialises_the_memento_rows_on_partitioned_embeddings(workspace, tmp_path):
    """Loaded under ZeRO-3 (zero.Init), each rank holds a shard; the new rows are set on the gathered
    matrices: equal to the single-process initialisation (seed-word means + seeded noise), the rest as loaded."""
    torchrun(HERE / "zero3_token_init.py", str(workspace / "base"), str(workspace / "zero3.json"), str(tmp_path))
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["zero3"]
    for shard in result["partitioned"]:  # partitioned at load: no rank holds the whole embedding
        assert 0 <= shard["local"] < shard["full"]
    gathered = torch.load(tmp_path / "matrices.pt")
    tokenizer, base = load_tokenizer(workspace / "base"), load_causal_lm(workspace / "base")
    rows = base.get_input_embeddings().weight.shape[0]
    original = {"embedding": base.get_input_embeddings().weight, "head": base.get_output_embeddings().weight}
    original = {name: matrix.detach().clone() for name, matrix in original.items()}
    ids = add_memento_tokens(base, tokenizer, seed=0)
    assert result["ids"] == ids and min(ids) >= rows
    expected = {"embedding": base.get_input_embeddings().weight, "head": base.get_output_embeddings().weight}
    for name, matrix in gathered.items():
        assert matrix.shape == (rows + 4, original[name].shape[1])
        torch.testing.assert_close(matrix[:rows], original[name], rtol=0, atol=0)  # the rest unchanged
        torch.testing.assert_close(matrix, expected[name].detach(), rtol=0, atol=1e-6)
        for token, row in zip(SEED_WORDS, ids, strict=True):  # the semantic mean, plus N(0, 0.01^2) noise
            mean = seed_rows(tokenizer, original[name], SEED_WORDS[token])
            assert (matrix[row] - mean).abs().max() < 0.06


def test_accelerate_fsdp_on_cpu_is_one_line_not_plain_ddp(workspace, tmp_path):
    output = tmp_path / "out"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--use_fsdp", "--num_processes", "2"]
    command += ["-m", "memento.cli", "train", *_common(workspace, output), "--stage", "full", "--epochs", "1"]
    result = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("memento train: error:")]
    # at least one process says why; once one exits the launcher may end the other before it prints
    # (issue 34, item 17: two lines were asserted and one came on a loaded machine)
    assert 1 <= len(lines) <= 2 and all("FSDP needs GPUs" in line for line in lines), result.stderr[-4000:]
    assert f'File "{ROOT / "src"}' not in result.stderr  # no traceback through memento's code
    assert not output.exists()  # nothing trained

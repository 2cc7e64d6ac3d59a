"""`memento toy train`: data, tokenizer and a tiny Qwen3, trained by the real two-stage `memento train` path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from memento.toy import CHECKPOINT, TRAIN_SEED
from memento.toy.task import ToyTask

if TYPE_CHECKING:
    from transformers import Qwen3Config


def toy_config(vocab_size: int) -> Qwen3Config:
    """A ~0.8M-parameter Qwen3 (4 layers x 128, GQA 4/2), about 3 MB in fp32."""
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        pad_token_id=0,
        dtype="float32",
    )


def write_training_data(path: Path, task: ToyTask, count: int, seed: int) -> None:
    """Records in the data pipeline's form (problem, blocks, mementos, answer), one per line."""
    with path.open("w") as handle:
        for _, trace in task.examples(count, seed):
            record = {
                "problem": trace.prompt,
                "blocks": [b.reasoning for b in trace.blocks],
                "mementos": [b.memento for b in trace.blocks],
                "answer": trace.answer,
            }
            handle.write(json.dumps(record) + "\n")


def train_toy(
    output_dir: str | Path,
    *,
    task: ToyTask | None = None,
    examples: int = 2400,
    epochs: float = 8.0,
    memento_epochs: float = 2.0,
    full_attention_fraction: float = 0.3,
    learning_rate: float = 3e-3,
    batch_size: int = 32,
    seed: int = 0,
    install: bool = False,
    init_from: str | Path | None = None,
) -> Path:
    """Train the toy memento model (stage 1 full attention, stage 2 memento attention) into `output_dir`.

    With `install`, the result replaces the checkpoint shipped in the package. `init_from`: a toy
    checkpoint (e.g. `CHECKPOINT`) to start from instead of a freshly initialised model.
    """
    import torch  # the training stack loads only when training runs (`memento toy --help` stays fast)
    from transformers import AutoModelForCausalLM

    from memento.toy.tokenizer import build_toy_tokenizer
    from memento.training import TrainOptions, train

    torch.manual_seed(seed)
    task = task or ToyTask()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if init_from is not None:
        base = Path(init_from)
    else:
        base = output_dir / "base"
        base.mkdir(parents=True, exist_ok=True)
        tokenizer = build_toy_tokenizer()
        AutoModelForCausalLM.from_config(toy_config(len(tokenizer))).save_pretrained(base)
        tokenizer.save_pretrained(base)
    data = output_dir / "train.jsonl"
    write_training_data(data, task, examples, TRAIN_SEED + seed)
    options = TrainOptions(
        learning_rate=learning_rate,
        epochs=epochs,
        memento_epochs=memento_epochs,
        full_attention_fraction=full_attention_fraction,
        batch_size=batch_size,
        max_length=1024,
        seed=seed,
        logging_steps=20,
        save_total_limit=1,
        mask_delimiters=False,
    )
    final = train(base, [data], output_dir, stage="both", options=options)
    if install:
        CHECKPOINT.mkdir(exist_ok=True)
        for name in (
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "chat_template.jinja",
        ):
            if (final / name).exists():
                shutil.copy2(final / name, CHECKPOINT / name)
    return final

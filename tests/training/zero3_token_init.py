"""Run under torchrun: load a checkpoint with a DeepSpeed ZeRO-3 config in force, add the memento tokens,
and write (rank 0) what the test checks: whether loading partitioned the embedding, and the whole
matrices after the edit, gathered.

Usage: zero3_token_init.py CHECKPOINT DEEPSPEED_CONFIG OUTPUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from transformers import TrainingArguments

from memento.inference.loading import load_causal_lm, load_tokenizer
from memento.training import distributed
from memento.training.tokens import add_memento_tokens
from tests.training import launch_memento  # noqa: F401  (MEMENTO_TEST_NO_SHM: DeepSpeed's shm op off)


def main(checkpoint: str, config: str, output: str) -> None:
    arguments = TrainingArguments(output_dir=output, deepspeed=config, use_cpu=True, report_to=[])
    distributed.start(arguments)
    initialise(arguments, checkpoint, output)
    distributed.finish()  # with the model gone: the last reference to the process group goes here


def initialise(arguments: TrainingArguments, checkpoint: str, output: str) -> None:
    """Load partitioned, add the tokens, write what the test reads (rank 0)."""
    tokenizer = load_tokenizer(checkpoint)
    model = load_causal_lm(checkpoint)
    embedding = model.get_input_embeddings().weight
    partitioned = {"local": embedding.numel(), "full": int(getattr(embedding, "ds_numel", -1))}
    ids = add_memento_tokens(model, tokenizer, seed=0)
    head = model.get_output_embeddings().weight
    with distributed.gathered([model.get_input_embeddings().weight, head]):
        matrices = {"embedding": model.get_input_embeddings().weight.detach().clone(), "head": head.detach().clone()}
    if distributed.rank() == 0:
        torch.save(matrices, Path(output) / "matrices.pt")
    ranks = [None] * arguments.world_size
    torch.distributed.all_gather_object(ranks, partitioned)
    if distributed.rank() == 0:
        record = {"ids": ids, "partitioned": ranks, "zero3": distributed.zero3_enabled()}
        (Path(output) / "result.json").write_text(json.dumps(record))
    distributed.barrier()


if __name__ == "__main__":
    main(*sys.argv[1:])

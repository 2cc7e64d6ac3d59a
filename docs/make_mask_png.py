"""Regenerate docs/mask.png from a real trace: the embedded toy model solves one short problem
(greedy, memento eviction on), and `memento.mask_plot` draws that sequence's masks and cache.

    .venv/bin/python docs/make_mask_png.py
"""

from __future__ import annotations

import random
from pathlib import Path

from memento.config import MementoConfig
from memento.inference import MementoGenerator
from memento.inference.loading import load_model_and_tokenizer
from memento.mask_plot import plot_mask_picture
from memento.toy.task import ToyTask, parse_answer
from memento.toy.train import CHECKPOINT

OUTPUT = Path(__file__).resolve().parent / "mask.png"


def main() -> None:
    model, tokenizer = load_model_and_tokenizer(CHECKPOINT)
    task = ToyTask()  # the trained distribution: 14 numbers, 3 steps per block
    numbers = task.problem(random.Random(7))
    generator = MementoGenerator(model, tokenizer, MementoConfig(keep_last_n_blocks=0, mask_delimiters=False))
    result = generator.generate(task.prompt(numbers), max_new_tokens=400)[0]
    print(result.text)
    print(f"answer {parse_answer(result.text)} (expected {task.answer(numbers)}), {len(result.token_ids)} tokens")
    ids = result.prompt_ids + result.token_ids
    title = f"memento attention on a real trace of the embedded toy model ({len(ids)} tokens: {task.prompt(numbers)})"
    pictures = plot_mask_picture(ids, generator.special_ids, OUTPUT, title=title)
    for drawn in pictures:
        print(
            drawn.config.keep_last_n_blocks,
            drawn.config.mask_delimiters,
            "cached after each memento:",
            drawn.cache_tokens,
        )
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()

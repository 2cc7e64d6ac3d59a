"""Training step time and peak memory: full causal attention vs dense memento mask vs block-sparse memento mask.

For each sequence length, one memento sequence (blocks of ~1,150 tokens, mementos of ~194: the
OpenMementos averages) goes through forward + backward + AdamW step of a small Qwen3-like model
on CPU. Each (mode, length) runs in a fresh subprocess so that its peak RSS is its own; the
step time is the median of the timed steps after one warm-up step.

* full:          sdpa, plain causal (stage 1);
* dense:         sdpa with an L x L boolean memento mask;
* block-sparse:  the flex_attention BlockMask of the memento mask, run by
                 memento.training.sparse_attention (flex has no backward on CPU).

    .venv/bin/python bench/train_step.py                 # lengths 1k, 4k, 8k
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time

import torch

BLOCK, MEMENTO, PROMPT = 1150, 194, 200


def build(length: int) -> tuple[list[int], object]:
    from memento.format import SpecialIds

    vocab = 2048
    ids = SpecialIds(block_start=vocab - 4, block_end=vocab - 3, summary_start=vocab - 2, summary_end=vocab - 1)
    rng = random.Random(length)
    text = lambda n: [rng.randrange(1, vocab - 8) for _ in range(n)]  # noqa: E731
    sequence = text(PROMPT)
    while len(sequence) < length:
        sequence += [ids.block_start, *text(BLOCK), ids.block_end, ids.summary_start, *text(MEMENTO), ids.summary_end]
    return sequence[:length], ids


def run_one(mode: str, length: int, steps: int, threads: int) -> dict:
    from transformers import AutoModelForCausalLM, Qwen3Config

    from memento.attention import key_hidden_from
    from memento.config import MementoConfig
    from memento.training.masks import block_sparse_mask, dense_mask
    from memento.training.sparse_attention import register

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    sequence, special_ids = build(length)
    config = Qwen3Config(
        vocab_size=2048,
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=16384,
    )
    implementation = register() if mode == "block-sparse" else "sdpa"
    model = AutoModelForCausalLM.from_config(config, attn_implementation=implementation)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    input_ids = torch.tensor([sequence])
    hidden_from = key_hidden_from(sequence, special_ids, MementoConfig(mask_delimiters=False))[None]
    times, sparsity = [], None
    for _ in range(steps + 1):
        start = time.perf_counter()
        if mode == "full":
            mask = None
        elif mode == "dense":
            mask = dense_mask(hidden_from)
        else:
            mask = block_sparse_mask(hidden_from)
            sparsity = mask.sparsity()
        loss = model(input_ids=input_ids, attention_mask=mask, labels=input_ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return {
        "mode": mode,
        "length": length,
        "step_seconds": statistics.median(times[1:]),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "block_sparsity_percent": sparsity,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 8192])
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("MODE", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.steps, args.threads)))
        return
    print(
        f"forward+backward+AdamW, Qwen3-like 4 layers x 256, fp32, {args.threads} threads, CPU; "
        f"blocks of {BLOCK}, mementos of {MEMENTO}"
    )
    results = {}
    for length in args.lengths:
        for mode in ("full", "dense", "block-sparse"):
            command = [
                sys.executable,
                __file__,
                "--one",
                mode,
                str(length),
                "--steps",
                str(args.steps),
                "--threads",
                str(args.threads),
            ]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            results[(mode, length)] = json.loads(output.strip().splitlines()[-1])
            r = results[(mode, length)]
            print(
                f"  L={length:>5} {mode:<13} {r['step_seconds']:7.2f} s/step  peak RSS {r['peak_rss_mib']:7.0f} MiB",
                flush=True,
            )
    print(f"\n{'L':>6} {'mode':<13}{'s/step':>9}{'vs full':>9}{'peak MiB':>10}{'vs full':>9}{'tiles skipped':>15}")
    for length in args.lengths:
        full = results[("full", length)]
        for mode in ("full", "dense", "block-sparse"):
            r = results[(mode, length)]
            skipped = f"{r['block_sparsity_percent']:.0f}%" if r["block_sparsity_percent"] is not None else ""
            print(
                f"{length:>6} {mode:<13}{r['step_seconds']:9.2f}{r['step_seconds'] / full['step_seconds']:8.2f}x"
                f"{r['peak_rss_mib']:10.0f}{r['peak_rss_mib'] / full['peak_rss_mib']:8.2f}x{skipped:>15}"
            )


if __name__ == "__main__":
    main()

"""Training step time and peak memory: full causal attention vs dense memento mask vs block-sparse memento mask.

For each sequence length, one memento sequence (blocks of ~1,150 tokens, mementos of ~194: the
OpenMementos averages) goes through forward + backward + AdamW step of a Qwen3-like model. Each
(mode, length) runs in a fresh subprocess so that its peak memory is its own; a run's step time
is the median of its timed steps after one warm-up step. Runs are interleaved and repeated
(full, dense, block-sparse, full, ...); the table gives the median over repeats with its spread
(min..max) and the ratio of medians to full.

* full:          sdpa, plain causal (stage 1);
* dense:         sdpa with an L x L boolean memento mask;
* block-sparse:  the flex_attention BlockMask of the memento mask: run by flex_attention on CUDA,
                 by memento.training.sparse_attention on CPU (flex has no backward there).

    .venv/bin/python bench/train_step.py                      # CPU, 4 layers x 256, lengths 1k 4k 8k
    python bench/train_step.py --device cuda --dtype bf16 --size 12x1024 --lengths 8192 32768
        # the H200 figures of issue 13 (12 layers x 1024, Qwen3-like; heads of 64 are this script's choice)

Peak memory: the process's max RSS on CPU; torch.cuda.max_memory_allocated on CUDA.
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

from provenance import describe

BLOCK, MEMENTO, PROMPT = 1150, 194, 200
MODES = ("full", "dense", "block-sparse")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_size(text: str) -> tuple[int, int]:
    """'12x1024' -> (layers, hidden size)."""
    try:
        layers, hidden = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size takes LAYERSxHIDDEN, e.g. 12x1024, got {text!r}") from None
    if layers < 1 or hidden < 64 or hidden % 64:
        raise argparse.ArgumentTypeError(f"--size needs >= 1 layer and a hidden size that is a multiple of 64: {text}")
    return layers, hidden


def build(length: int, vocab: int) -> tuple[list[int], object]:
    from memento.format import SpecialIds

    ids = SpecialIds(block_start=vocab - 4, block_end=vocab - 3, summary_start=vocab - 2, summary_end=vocab - 1)
    rng = random.Random(length)
    text = lambda n: [rng.randrange(1, vocab - 8) for _ in range(n)]  # noqa: E731
    sequence = text(PROMPT)
    while len(sequence) < length:
        sequence += [ids.block_start, *text(BLOCK), ids.block_end, ids.summary_start, *text(MEMENTO), ids.summary_end]
    return sequence[:length], ids


def run_one(mode: str, length: int, args: argparse.Namespace) -> dict:
    from transformers import AutoModelForCausalLM, Qwen3Config

    from memento.attention import key_hidden_from
    from memento.config import MementoConfig
    from memento.training.masks import block_sparse_mask, dense_mask
    from memento.training.sparse_attention import register

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    layers, hidden = args.size
    heads = hidden // 64
    sequence, special_ids = build(length, args.vocab)
    config = Qwen3Config(
        vocab_size=args.vocab,
        hidden_size=hidden,
        intermediate_size=3 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        head_dim=64,
        max_position_embeddings=max(16384, length),
    )
    sparse_implementation = "flex_attention" if cuda else register()
    implementation = sparse_implementation if mode == "block-sparse" else "sdpa"
    model = AutoModelForCausalLM.from_config(config, attn_implementation=implementation, dtype=DTYPES[args.dtype])
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    input_ids = torch.tensor([sequence], device=device)
    hidden_from = key_hidden_from(sequence, special_ids, MementoConfig(mask_delimiters=False))[None].to(device)
    times, sparsity = [], None
    for _ in range(args.steps + 1):
        if cuda:
            torch.cuda.synchronize(device)
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
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": mode,
        "length": length,
        "step_seconds": statistics.median(times[1:]),
        "peak_mib": peak,
        "block_sparsity_percent": sparsity,
    }


def run_subprocess(mode: str, length: int, argv: list[str]) -> dict | None:
    """One (mode, length) in a fresh process; None (with its error's last line) when it fails, e.g. OOM."""
    command = [sys.executable, __file__, *argv, "--one", mode, str(length)]
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    if process.returncode != 0:
        lines = (process.stderr or process.stdout).strip().splitlines()
        print(f"  L={length:>5} {mode:<13} failed: {lines[-1] if lines else process.returncode}", flush=True)
        return None
    return json.loads(process.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 8192])
    parser.add_argument("--steps", type=int, default=2, help="timed steps per run, after one warm-up")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every (mode, length), interleaved")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--size", type=parse_size, default="4x256", help="LAYERSxHIDDEN of the Qwen3-like model")
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--one", nargs=2, metavar=("MODE", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args)))
        return
    layers, hidden = args.size
    argv = [
        *("--steps", str(args.steps), "--threads", str(args.threads), "--device", args.device),
        *("--dtype", args.dtype, "--size", f"{layers}x{hidden}", "--vocab", str(args.vocab)),
    ]
    print(describe(args.device))
    print(
        f"forward+backward+AdamW, Qwen3-like {layers} layers x {hidden}, {args.dtype}, vocab {args.vocab}; "
        f"blocks of {BLOCK}, mementos of {MEMENTO}; {args.repeats} interleaved repeats of {args.steps} timed steps"
    )
    runs: dict[tuple[str, int], list[dict]] = {(mode, length): [] for length in args.lengths for mode in MODES}
    for repeat in range(args.repeats):
        for length in args.lengths:
            for mode in MODES:
                result = run_subprocess(mode, length, argv)
                if result is None:
                    continue
                runs[(mode, length)].append(result)
                print(
                    f"  repeat {repeat + 1} L={length:>5} {mode:<13} {result['step_seconds']:8.3f} s/step  "
                    f"peak {result['peak_mib']:8.0f} MiB",
                    flush=True,
                )
    memory = "peak MiB" if args.device == "cpu" else "peak alloc MiB"
    print(
        f"\n{'L':>6} {'mode':<13}{'s/step median':>14}{'(min..max)':>20}{'vs full':>9}{memory:>16}{'vs full':>9}"
        f"{'tiles skipped':>15}"
    )
    for length in args.lengths:
        full = runs[("full", length)]
        for mode in MODES:
            done = runs[(mode, length)]
            if not done:
                print(f"{length:>6} {mode:<13}{'failed':>14}")
                continue
            seconds = [r["step_seconds"] for r in done]
            median = statistics.median(seconds)
            peak = max(r["peak_mib"] for r in done)
            time_ratio = median / statistics.median([r["step_seconds"] for r in full]) if full else float("nan")
            peak_ratio = peak / max(r["peak_mib"] for r in full) if full else float("nan")
            sparsity = done[0]["block_sparsity_percent"]
            skipped = f"{sparsity:.0f}%" if sparsity is not None else ""
            print(
                f"{length:>6} {mode:<13}{median:>14.3f}{f'({min(seconds):.3f}..{max(seconds):.3f})':>20}"
                f"{time_ratio:>8.2f}x{peak:>16.0f}{peak_ratio:>8.2f}x{skipped:>15}"
            )


if __name__ == "__main__":
    main()

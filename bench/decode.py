"""Decode speed and peak KV: plain transformers decoding vs memento eviction vs memento without eviction.

One long memento sequence is decoded token by token with forced tokens (teacher forcing, the
same per-step computation as generation) by a ~20M-parameter Qwen3-like model:

* plain:     model(...) with a transformers DynamicCache, no custom mask (the baseline);
* memento:   MementoGenerator, keep_last_n_blocks=0 (blocks physically evicted);
* memento-1: MementoGenerator, keep_last_n_blocks=-1 (our loop, nothing evicted).

Runs are interleaved and repeated (this machine is noisy); medians are reported, with ratios
to plain, and peak KV measured from the real cache next to `memento.kv.simulate`'s ideal.

    .venv/bin/python bench/decode.py            # ~4,000 tokens, 3 repeats
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from transformers import AutoModelForCausalLM, DynamicCache, Qwen3Config

from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.inference import MementoGenerator
from memento.kv import KVGeometry, simulate

VOCAB = 8192
IDS = SpecialIds(block_start=VOCAB - 4, block_end=VOCAB - 3, summary_start=VOCAB - 2, summary_end=VOCAB - 1)


def build_sequence(tokens: int, block: int, memento: int, prompt: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    text = lambda n: [rng.randrange(1, VOCAB - 8) for _ in range(n)]  # noqa: E731
    sequence = text(prompt)
    while len(sequence) < tokens:
        sequence += [IDS.block_start, *text(block), IDS.block_end, IDS.summary_start, *text(memento), IDS.summary_end]
    return sequence[:tokens]


def plain_decode(model, sequence: list[int], prompt: int) -> tuple[float, int]:
    """Seconds for the decode steps, and final cache bytes (= its peak: nothing is ever freed)."""
    cache = DynamicCache()
    with torch.no_grad():
        model(input_ids=torch.tensor([sequence[:prompt]]), past_key_values=cache, use_cache=True)
        start = time.perf_counter()
        for token in sequence[prompt:]:
            model(input_ids=torch.tensor([[token]]), past_key_values=cache, use_cache=True)
        elapsed = time.perf_counter() - start
    size = sum(layer.keys.numel() * layer.keys.element_size() * 2 for layer in cache.layers)
    return elapsed, size


def memento_decode(model, sequence: list[int], prompt: int, config: MementoConfig) -> tuple[float, int]:
    """Seconds for the decode steps and the peak of cached tokens (before each step's evictions)."""
    generator = MementoGenerator(model, None, config, special_ids=IDS)
    times = []
    state = {"last": None}

    def clock(_cache) -> None:
        now = time.perf_counter()
        if state["last"] is not None:
            times.append(now - state["last"])
        state["last"] = now

    # the prompt as one chunk, then one forward per token: time only the per-token steps
    generator.score(sequence, chunk_size=1, on_step=clock)
    return sum(times[prompt - 1 :]), generator.last_result.kv_tokens_peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--block", type=int, default=400, help="reasoning tokens per block")
    parser.add_argument("--memento", type=int, default=40, help="tokens per memento")
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
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
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()
    parameters = sum(p.numel() for p in model.parameters())
    sequence = build_sequence(args.tokens, args.block, args.memento, args.prompt)
    geometry = KVGeometry.from_config(config, bytes_per_element=4)
    evict = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)
    keep = MementoConfig(keep_last_n_blocks=-1, mask_delimiters=False)
    blocks = sequence.count(IDS.summary_end)
    print(
        f"model {parameters / 1e6:.1f}M parameters, fp32, {args.threads} threads; sequence {len(sequence):,} tokens, "
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
        print(f"  repeat {repeat + 1}: " + ", ".join(f"{n} {s[-1]:.1f}s" for n, s in seconds.items()), flush=True)

    decoded = len(sequence) - args.prompt
    ideal = simulate(sequence, IDS, geometry, evict).peak_bytes
    plain_speed = decoded / statistics.median(seconds["plain"])
    print(f"\n{'mode':<12}{'tok/s':>9}{'vs plain':>10}{'peak KV MiB':>13}{'vs plain':>10}")
    for name, runs in seconds.items():
        speed = decoded / statistics.median(runs)
        print(
            f"{name:<12}{speed:>9.1f}{speed / plain_speed:>9.2f}x{peaks[name] / 2**20:>13.1f}"
            f"{peaks['plain'] / peaks[name]:>9.2f}x lower"
        )
    print(
        f"\nmemento peak KV {peaks['memento'] / 2**20:.2f} MiB; simulated ideal (memento.kv.simulate) "
        f"{ideal / 2**20:.2f} MiB: {'equal' if peaks['memento'] == ideal else 'DIFFERENT'}"
    )


if __name__ == "__main__":
    main()

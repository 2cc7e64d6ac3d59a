"""Parts 3 and 4 of bench/gpu_check.py: the HF path's batched decode and the block-sparse training step.

decode: `MementoGenerator.generate` (eviction after every memento) vs plain `model.generate`, both
greedy on the same random Qwen3-0.6B-like model (built from a config) and forced by one forward hook
onto the same memento-shaped script (blocks, ``<|block_end|>``, a memento, ``<|summary_end|>``), so
both paths decode the same tokens and the memento path really evicts. Interleaved, repeated.
train: forward + backward + AdamW of a Qwen3-like model on one memento sequence (bench/train_step.py's
sequence) with full causal sdpa, the block-sparse mask through flex_attention (the trainer's CUDA
path) and through the tiled `memento.training.sparse_attention`.
"""

from __future__ import annotations

import random
import statistics
import time

import torch

from memento.config import MementoConfig
from memento.format import SpecialIds

QWEN3_06B = {  # Qwen3-0.6B's geometry; weights random
    "vocab_size": 151936, "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
    "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "tie_word_embeddings": True,
}  # fmt: skip
TINY = {
    "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "tie_word_embeddings": True,
}  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}..{max(values):.1f})"


def _model(geometry: dict, device: torch.device, dtype: torch.dtype, implementation: str = "sdpa"):
    from transformers import AutoModelForCausalLM, Qwen3Config

    config = Qwen3Config(**geometry, max_position_embeddings=40960)
    with torch.device(device):  # initialised on the device: a 0.6B random init on the host takes long
        model = AutoModelForCausalLM.from_config(config, attn_implementation=implementation, dtype=dtype)
    return model.to(device)


def _script(vocab: int, length: int, block: int, memento: int, prompt: int) -> tuple[list[int], SpecialIds]:
    ids = SpecialIds(block_start=vocab - 4, block_end=vocab - 3, summary_start=vocab - 2, summary_end=vocab - 1)
    rng = random.Random(0)
    text = lambda n: [rng.randrange(1, vocab - 8) for _ in range(n)]  # noqa: E731
    sequence = text(prompt)
    while len(sequence) < length:
        sequence += [ids.block_start, *text(block), ids.block_end, ids.summary_start, *text(memento), ids.summary_end]
    return sequence[:length], ids


def _force(model, script: torch.Tensor):
    """A forward hook making every forward's last logits pick script[position + 1] (no host sync)."""

    def hook(module, args, kwargs, output):
        positions = kwargs.get("position_ids")
        last = (
            positions[:, -1] if positions is not None else kwargs["cache_position"][-1:].expand(output.logits.shape[0])
        )
        chosen = script[(last + 1).clamp(max=script.numel() - 1)]
        logits = output.logits[:, -1]
        logits.fill_(-1e4)
        logits.scatter_(1, chosen[:, None].to(torch.int64), 1e4)
        return output

    return model.register_forward_hook(hook, with_kwargs=True)


def part_decode(device: torch.device, smoke: bool, budget: float | None = None) -> dict:
    from memento.inference import MementoGenerator

    geometry = TINY if smoke else QWEN3_06B
    batches, new_tokens, repeats = ([1, 2], 24, 2) if smoke else ([1, 8, 32], 256, 2)
    block, memento, prompt = (6, 2, 8) if smoke else (56, 8, 64)
    dtype = torch.float32 if smoke else torch.bfloat16
    budget = budget or (60 if smoke else 150)
    model = _model(geometry, device, dtype).eval()
    weights_mib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    sequence, ids = _script(geometry["vocab_size"], prompt + new_tokens + 1, block, memento, prompt)
    handle = _force(model, torch.tensor(sequence, device=device))
    memento_generator = MementoGenerator(
        model, None, MementoConfig(keep_last_n_blocks=0, mask_delimiters=False), special_ids=ids
    )
    print(
        f"random Qwen3-like model ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, {dtype}), "
        f"prompt {prompt}, {new_tokens} new tokens forced onto blocks of {block} + mementos of {memento}"
    )

    def plain(batch: int) -> tuple[list[int], int]:
        inputs = torch.tensor([sequence[:prompt]] * batch, device=device)
        out = model.generate(
            input_ids=inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=new_tokens,
            min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, eos_token_id=None,
        )  # fmt: skip
        return out[0, prompt:].tolist(), 0

    def evicting(batch: int) -> tuple[list[int], int]:
        results = memento_generator.generate([sequence[:prompt]] * batch, max_new_tokens=new_tokens, temperature=0.0)
        return results[0].token_ids, len(results[0].evictions)

    rows, deadline = [], time.monotonic() + budget
    for batch in batches:
        if time.monotonic() > deadline:
            rows.append({"batch": batch, "skipped": "time budget"})
            continue
        seconds: dict[str, list[float]] = {"plain": [], "memento": []}
        peaks: dict[str, float | None] = {}
        scripted, evictions = {}, 0
        for repeat in range(repeats):
            if repeat and time.monotonic() > deadline:
                break  # keep the repeats done
            for name, run in (("plain", plain), ("memento", evicting)):  # interleaved
                _reset_peak(device)
                _sync(device)
                start = time.perf_counter()
                with torch.no_grad():
                    tokens, evicted = run(batch)
                _sync(device)
                seconds[name].append(time.perf_counter() - start)
                peaks[name] = _peak_mib(device)
                scripted[name] = tokens == sequence[prompt : prompt + new_tokens]
                evictions = max(evictions, evicted)
        speeds = {name: [batch * new_tokens / s for s in runs] for name, runs in seconds.items()}
        rows.append(
            {
                "batch": batch,
                "tok_s": speeds,
                "ratio": statistics.median(speeds["memento"]) / statistics.median(speeds["plain"]),
                "peak_mib": peaks,
                "scripted": scripted,
                "evictions": evictions,
            }
        )
    handle.remove()
    print(f"weights {weights_mib:.0f} MiB; tok/s = batch x new tokens / wall time (prefill included)")
    print(f"\n{'batch':>5}{'plain tok/s':>22}{'memento tok/s':>22}{'ratio':>8}{'peak MiB plain':>16}{'memento':>10}"
          f"{'evictions/seq':>15}{'as scripted':>13}")  # fmt: skip
    for row in rows:
        if "skipped" in row:
            print(f"{row['batch']:>5} skipped ({row['skipped']})")
            continue
        peak = row["peak_mib"]
        fmt = lambda v: "n/a" if v is None else f"{v:.0f}"  # noqa: E731
        print(
            f"{row['batch']:>5}{_spread(row['tok_s']['plain']):>22}{_spread(row['tok_s']['memento']):>22}{row['ratio']:>7.2f}x"
            f"{fmt(peak['plain']):>16}{fmt(peak['memento']):>10}{row['evictions']:>15}{all(row['scripted'].values())!s:>13}"
        )
    done = [row for row in rows if "skipped" not in row]
    ok = bool(done) and all(all(r["scripted"].values()) and r["evictions"] > 0 for r in done)
    return {"weights_mib": weights_mib, "rows": rows, "ok": ok}


def part_train(device: torch.device, smoke: bool, budget: float | None = None) -> dict:
    from memento.attention import key_hidden_from
    from memento.training.masks import block_sparse_mask
    from memento.training.sparse_attention import register
    from train_step import BLOCK, MEMENTO, build  # bench/train_step.py: the same memento sequence

    cuda = device.type == "cuda"
    lengths, layers, hidden, steps, repeats = ([256, 512], 2, 64, 1, 1) if smoke else ([8192, 32768], 12, 1024, 2, 2)
    dtype = torch.float32 if smoke else torch.bfloat16
    budget = budget or (90 if smoke else 170)
    vocab = 2048
    modes = ["full", "tiled"] + (["flex"] if cuda else [])  # flex_attention has no backward on CPU
    geometry = {
        "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": 3 * hidden, "num_hidden_layers": layers,
        "num_attention_heads": hidden // 64, "num_key_value_heads": max(1, hidden // 128), "head_dim": 64,
        "tie_word_embeddings": False,
    }  # fmt: skip
    implementation = {"full": "sdpa", "tiled": register(), "flex": "flex_attention"}
    print(
        f"forward+backward+AdamW, Qwen3-like {layers} layers x {hidden}, {dtype}, vocab {vocab}; blocks of {BLOCK}, "
        f"mementos of {MEMENTO}; {repeats} interleaved repeats of {steps} timed steps after one warm-up"
    )

    def one_run(mode: str, length: int) -> tuple[float, float | None]:
        sequence, ids = build(length, vocab)
        torch.manual_seed(0)
        model = _model(geometry, device, dtype, implementation[mode]).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        input_ids = torch.tensor([sequence], device=device)
        hidden_from = key_hidden_from(sequence, ids, MementoConfig(mask_delimiters=False))[None].to(device)
        _reset_peak(device)
        times = []
        for _ in range(steps + 1):
            _sync(device)
            start = time.perf_counter()
            mask = None if mode == "full" else block_sparse_mask(hidden_from)
            loss = model(input_ids=input_ids, attention_mask=mask, labels=input_ids).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            _sync(device)
            times.append(time.perf_counter() - start)
        peak = _peak_mib(device)
        del model, optimizer
        return statistics.median(times[1:]), peak

    results: dict[tuple[str, int], list[tuple[float, float | None]]] = {}
    errors: dict[str, str] = {}
    deadline = time.monotonic() + budget
    for _ in range(repeats):
        for length in lengths:
            for mode in modes:
                key = f"{mode}@{length}"
                if key in errors:
                    continue
                if time.monotonic() > deadline:
                    errors.setdefault(key, "skipped: time budget")
                    continue
                try:
                    results.setdefault((mode, length), []).append(one_run(mode, length))
                except Exception as error:  # e.g. out of memory: report, go on
                    errors[key] = f"{type(error).__name__}: {error}".splitlines()[0][:160]
                    if cuda:
                        torch.cuda.empty_cache()
    print(f"\n{'L':>6} {'mode':<7}{'s/step median':>14}{'(min..max)':>20}{'vs full':>9}{'peak MiB':>10}{'vs full':>9}")
    table = []
    for length in lengths:
        full = results.get(("full", length))
        for mode in modes:
            runs = results.get((mode, length))
            if not runs:
                print(f"{length:>6} {mode:<7} {errors.get(f'{mode}@{length}', 'no run')}")
                continue
            seconds = [r[0] for r in runs]
            peak = runs[0][1]
            ratio = statistics.median(seconds) / statistics.median([r[0] for r in full]) if full else float("nan")
            peak_ratio = peak / full[0][1] if (full and peak is not None) else None
            table.append({"length": length, "mode": mode, "seconds": seconds, "ratio": ratio, "peak_mib": peak})
            low_high = f"({min(seconds):.3f}..{max(seconds):.3f})"
            print(
                f"{length:>6} {mode:<7}{statistics.median(seconds):>14.3f}{low_high:>20}"
                f"{ratio:>8.2f}x{'n/a' if peak is None else f'{peak:.0f}':>10}"
                f"{'' if peak_ratio is None else f'{peak_ratio:.2f}x':>9}"
            )
    for key, message in errors.items():
        print(f"  {key}: {message}")
    ok = all(any(r["mode"] == m and r["length"] == n for r in table) for m in ("full", "tiled") for n in lengths)
    return {"rows": table, "errors": errors, "ok": ok}

"""GPU check: the token mover, CUDA-graph buffer semantics, HF decode, training step; with vLLM's CUDA build also
its cache-write op and `memento verify`.

One command on a CUDA machine with torch + transformers (+ peft, accelerate), no network; vLLM optional;
everything is built from configs. Five parts, each guarded (a failure is reported and the others run)
and each with a time budget (items past it are reported as skipped); one table per part, then one
JSON summary line.

1. mover:  `memento.vllm.kv_mover.move_tokens` on CUDA caches (bf16, fp8) of 36 layers, ~1k compaction
           moves: bytes equal to a CPU reference, and its time against the authors' per-token loop
           (two `copy_` per token per layer), interleaved and repeated, with the ratio.
2. graphs: a gather-based paged attention (cache write through a slot mapping, then attention over a
           block table up to seq_lens) captured in a `torch.cuda.CUDAGraph`: an in-place rewrite of
           the persistent buffers is seen at replay, a substituted tensor is not, and a compaction
           (mover + in-place rewrite) replays to attention over the kept tokens.
3. decode: `MementoGenerator` (batched decode with eviction) vs plain `model.generate` at batch 1, 8,
           32 on a random Qwen3-0.6B-like model: tok/s ratio and peak memory (gpu_check_hf.py).
4. train:  the block-sparse memento training step (flex_attention, the trainer's CUDA path, and the
           tiled `memento.training.sparse_attention`) vs full causal at 8K and 32K tokens: step time
           and peak memory (gpu_check_hf.py).
5. vllm:   only where vLLM's CUDA build is importable (else "skipped"): the real `reshape_and_cache_flash`
           with the self-check's bf16/fp16/fp8 probes against its strict stand-in, then raw float32
           probes (issue 30.1, informational), each in a subprocess; then `memento verify --dtype bfloat16`
           on 16 query / 4 KV heads of size 128 (gpu_check_vllm.py).

    PYTHONPATH=src python bench/gpu_check.py          # on the GPU; exit 0 when every part passed
    .venv/bin/python bench/gpu_check.py --cpu-smoke   # tiny sizes on CPU: the script is not broken

Budgets (mover 90 s, decode 150 s, train 170 s; with vLLM 60, 100, 100 and vllm 200 s; the item running at
a deadline finishes, verify is killed at it) keep a GPU run under 8 minutes. Not yet run on a GPU: CPU
smoke mode only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # provenance, gpu_check_hf, train_step

import gpu_check_hf
import gpu_check_vllm
from memento.vllm.kv_mover import move_tokens
from provenance import describe


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


def spread(values: list[float], scale: float = 1.0) -> str:
    return f"{statistics.median(values) * scale:.2f} ({min(values) * scale:.2f}..{max(values) * scale:.2f})"


# ---- part 1: the mover ------------------------------------------------------------------------------------


def layer_views(layers: int, blocks: int, heads: int, block_size: int, head_dim: int, dtype, device, nhd: bool):
    """Per-layer [blocks, heads, block_size, 2*head_dim] views of one byte buffer, LBHNC or LBNHC order."""
    element = torch.empty((), dtype=dtype).element_size()
    content = 2 * head_dim
    size = layers * blocks * heads * block_size * content * element
    raw = torch.randint(0, 120, (size,), dtype=torch.uint8, device=device)  # < 0x78: no fp8 NaN bytes
    if nhd:  # physical [L, B, N, H, C]
        strides = (heads * block_size * content, content, heads * content, 1)
    else:  # physical [L, B, H, N, C]
        strides = (heads * block_size * content, block_size * content, content, 1)
    page = blocks * heads * block_size * content
    typed = raw.view(dtype)
    return [typed.as_strided((blocks, heads, block_size, content), strides, layer * page) for layer in range(layers)]


def compaction_moves(
    requests: int, blocks_per_request: int, block_size: int, moves: int
) -> tuple[list[int], list[int]]:
    """Per request an evicted span of random length; the `moves // requests` tokens after it slide down
    by that length (overlapping moves, dst < src), as a compaction makes them."""
    generator = torch.Generator().manual_seed(0)
    length, count = blocks_per_request * block_size, moves // requests
    src, dst = [], []
    for request in range(requests):
        base = request * length
        span = int(torch.randint(block_size, length - count - block_size, (1,), generator=generator))
        src += [base + slot for slot in range(length - count, length)]
        dst += [base + slot - span for slot in range(length - count, length)]
    return src, dst


def per_token_loop(views: list[torch.Tensor], src: list[int], dst: list[int]) -> None:
    """The authors' way: two `copy_` (K, V) per token per layer, in order (correct because dst < src)."""
    head_dim = views[0].shape[3] // 2
    block_size = views[0].shape[2]
    for kv in views:
        for s, d in zip(src, dst, strict=True):
            sb, so, db, do = s // block_size, s % block_size, d // block_size, d % block_size
            kv[db, :, do, :head_dim].copy_(kv[sb, :, so, :head_dim])
            kv[db, :, do, head_dim:].copy_(kv[sb, :, so, head_dim:])


def part_mover(args: argparse.Namespace, device: torch.device) -> dict:
    layers, blocks, heads, head_dim, block_size = args.mover_shape
    requests = blocks // args.blocks_per_request
    src, dst = compaction_moves(requests, args.blocks_per_request, block_size, args.moves)
    src_t, dst_t = torch.tensor(src), torch.tensor(dst)
    kinds = [
        ("bf16", torch.bfloat16, False),
        ("bf16-nhd", torch.bfloat16, True),
        ("fp8-e4m3", torch.float8_e4m3fn, False),
    ]
    rows, deadline = [], time.monotonic() + args.budget_mover
    print(
        f"{layers} layers x [{blocks}, {heads}, {block_size}, {2 * head_dim}], {len(src)} moves in {requests} requests"
    )
    for name, dtype, nhd in kinds:
        if time.monotonic() > deadline:
            rows.append({"cache": name, "skipped": "time budget"})
            continue
        views = layer_views(layers, blocks, heads, block_size, head_dim, dtype, device, nhd)
        before = [kv.view(torch.uint8).to("cpu", copy=True) for kv in views]
        move_tokens(views + views[:2], src_t, dst_t)  # two layers passed twice: shared caches move once
        expected = [b.clone() for b in before]
        sb, so, db, do = src_t // block_size, src_t % block_size, dst_t // block_size, dst_t % block_size
        for reference, snapshot in zip(expected, before, strict=True):
            reference[db, :, do] = snapshot[sb, :, so]  # every source read from the untouched snapshot
        exact = all(torch.equal(kv.view(torch.uint8).cpu(), e) for kv, e in zip(views, expected, strict=True))
        loop_views = layer_views(layers, blocks, heads, block_size, head_dim, dtype, device, nhd)
        for kv, snapshot in zip(loop_views, before, strict=True):
            kv.view(torch.uint8).copy_(snapshot.to(device))
        per_token_loop(loop_views, src, dst)
        loop_exact = all(torch.equal(kv.view(torch.uint8).cpu(), e) for kv, e in zip(loop_views, expected, strict=True))
        mover_s, loop_s = [], []
        for _ in range(args.repeats):  # interleaved; the moves repeat on moved data (same work)
            mover_s.append(timed(lambda v=views: move_tokens(v, src_t, dst_t), device))
            loop_s.append(timed(lambda v=loop_views: per_token_loop(v, src, dst), device))
        ratio = statistics.median(loop_s) / statistics.median(mover_s)
        rows.append(
            {
                "cache": name,
                "exact_vs_cpu": exact,
                "loop_exact": loop_exact,
                "mover_s": mover_s,
                "loop_s": loop_s,
                "speedup": ratio,
            }
        )
        del views, loop_views
    print(
        f"\n{'cache':<10}{'bytes = CPU ref':>16}{'mover ms (min..max)':>24}{'per-token loop ms':>26}{'loop/mover':>12}"
    )
    for row in rows:
        if "skipped" in row:
            print(f"{row['cache']:<10} skipped ({row['skipped']})")
            continue
        print(
            f"{row['cache']:<10}{row['exact_vs_cpu']!s:>16}{spread(row['mover_s'], 1e3):>24}"
            f"{spread(row['loop_s'], 1e3):>26}{row['speedup']:>11.1f}x"
        )
    ok = all(r.get("exact_vs_cpu", True) and r.get("loop_exact", True) for r in rows)
    return {"moves": len(src), "layers": layers, "rows": rows, "ok": ok}


# ---- part 2: CUDA-graph semantics -------------------------------------------------------------------------


class PagedStep:
    """Persistent buffers of one attention step, as vLLM's runner keeps them, and the step itself.

    write: new K/V [R, H, 2D] lands at `slot_mapping` (byte copy); attend: per request the keys of
    its `block_table` row up to `seq_lens`, gathered, then softmax attention of one query per request.
    """

    def __init__(self, device: torch.device, requests=4, width=6, blocks=32, heads=2, block_size=16, dim=32):
        self.dim, self.block_size = dim, block_size
        generator = torch.Generator().manual_seed(1)
        real = {"device": device, "dtype": torch.float64}  # fp64: no TF32, no tolerance question
        self.cache = torch.randn(blocks, heads, block_size, 2 * dim, generator=generator).to(**real)
        self.query = torch.randn(requests, heads, dim, generator=generator).to(**real)
        self.new_kv = torch.randn(requests, heads, 2 * dim, generator=generator).to(**real)
        self.block_table = torch.zeros(requests, width, dtype=torch.int64, device=device)
        self.seq_lens = torch.zeros(requests, dtype=torch.int64, device=device)
        self.slot_mapping = torch.zeros(requests, dtype=torch.int64, device=device)
        self.output = torch.zeros(requests, heads, dim, **real)

    def run(self, block_table=None, seq_lens=None, slot_mapping=None) -> None:
        """The step on the given tensors (default: the persistent buffers), into `self.output`."""
        block_table = self.block_table if block_table is None else block_table
        seq_lens = self.seq_lens if seq_lens is None else seq_lens
        slot_mapping = self.slot_mapping if slot_mapping is None else slot_mapping
        size = self.block_size
        self.cache[slot_mapping // size, :, slot_mapping % size] = self.new_kv
        keys = self.cache[block_table]  # [R, W, H, N, 2D]
        keys = keys.permute(0, 2, 1, 3, 4).reshape(keys.shape[0], keys.shape[2], -1, 2 * self.dim)  # [R, H, W*N, 2D]
        scores = torch.einsum("rhd,rhkd->rhk", self.query, keys[..., : self.dim]) / self.dim**0.5
        visible = torch.arange(scores.shape[-1], device=scores.device)[None, None, :] < seq_lens[:, None, None]
        weights = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
        self.output.copy_(torch.einsum("rhk,rhkd->rhd", weights, keys[..., self.dim :]))

    def set(self, table: list[list[int]], lens: list[int], slots: list[int]) -> None:
        """In-place rewrite of the persistent buffers (what the memento runner must do)."""
        self.block_table.copy_(torch.tensor(table))
        self.seq_lens.copy_(torch.tensor(lens))
        self.slot_mapping.copy_(torch.tensor(slots))


def gather(step: PagedStep, cache: torch.Tensor, slots: list[int]) -> torch.Tensor:
    """K|V [n, H, 2D] of the listed slots."""
    index = torch.tensor(slots, device=cache.device)
    return cache[index // step.block_size, :, index % step.block_size]


def dense_reference(step: PagedStep, kv_per_request: list[torch.Tensor]) -> torch.Tensor:
    """Attention of each request's query over exactly its given K|V [n, H, 2D] (no paging, no mask)."""
    outputs = []
    for r, kv in enumerate(kv_per_request):
        scores = torch.einsum("hd,nhd->hn", step.query[r], kv[..., : step.dim]) / step.dim**0.5
        outputs.append(torch.einsum("hn,nhd->hd", torch.softmax(scores, -1), kv[..., step.dim :]))
    return torch.stack(outputs)


def part_graphs(args: argparse.Namespace, device: torch.device) -> dict:
    cuda = device.type == "cuda"
    step = PagedStep(device)
    width, size = step.block_table.shape[1], step.block_size

    def slots(table: list[list[int]], lens: list[int]) -> list[list[int]]:
        return [[row[i // size] * size + i % size for i in range(n)] for row, n in zip(table, lens, strict=True)]

    def last_slots(table: list[list[int]], lens: list[int]) -> list[int]:
        """Each row's last slot: where the step writes its new token."""
        return [row[-1] for row in slots(table, lens)]

    table_a = [[r * width + i for i in range(width)] for r in range(4)]
    lens_a = [40, 70, 17, 90]
    slots_a = last_slots(table_a, lens_a)
    step.set(table_a, lens_a, slots_a)
    base_cache = step.cache.clone()
    graph = None
    if cuda:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            step.run()  # warm-up outside capture
        torch.cuda.current_stream().wait_stream(side)
        step.cache.copy_(base_cache)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step.run()

    def replay() -> torch.Tensor:
        if graph is not None:
            graph.replay()
        else:
            step.run()
        synchronize(device)
        return step.output.clone()

    def expected(cache: torch.Tensor, table: list[list[int]], lens: list[int]) -> torch.Tensor:
        return dense_reference(step, [gather(step, cache, s) for s in slots(table, lens)])

    def with_step_tokens(step_slots: list[int]) -> torch.Tensor:
        """The cache before the step with the step's new tokens at `step_slots`: what its write leaves."""
        written = base_cache.clone()
        index = torch.tensor(step_slots, device=device)
        written[index // size, :, index % size] = step.new_kv
        return written

    rows = []
    # (a) in place: new lengths, a new block-table row and slots written into the captured buffers
    step.cache.copy_(base_cache)
    table_b = [list(reversed(row)) for row in table_a]
    lens_b = [33, 80, 45, 64]
    slots_b = last_slots(table_b, lens_b)
    step.set(table_b, lens_b, slots_b)
    out = replay()
    written = with_step_tokens(slots_b)
    rows.append(
        (
            "in-place rewrite",
            torch.allclose(out, expected(written, table_b, lens_b), atol=1e-9),
            torch.allclose(out, expected(written, table_a, lens_a), atol=1e-9),
        )
    )
    # (b) substituted: fresh tensors handed over; a graph keeps reading the captured (old = b) buffers
    step.cache.copy_(base_cache)
    lens_c = [20, 20, 20, 20]
    slots_c = last_slots(table_b, lens_c)
    new = tuple(torch.tensor(values, device=device) for values in (table_b, lens_c, slots_c))
    if graph is not None:
        out = replay()  # the graph cannot be handed the new tensors: it replays its captured addresses
    else:
        step.run(*new)  # eager code does see them
        out = step.output.clone()
    written_c = with_step_tokens(slots_c)
    rows.append(
        (
            "substituted tensors",
            torch.allclose(out, expected(written_c, table_b, lens_c), atol=1e-9),
            torch.allclose(out, expected(written, table_b, lens_b), atol=1e-9),
        )
    )
    # (c) compaction: evict a span of request 1, move the tokens after it down, rewrite lengths in place
    step.cache.copy_(base_cache)
    step.set(table_b, lens_b, slots_b)
    replay()  # the step at lens_b writes its token
    cache_before = step.cache.clone()
    logical = slots(table_b, lens_b)
    kept = [gather(step, cache_before, s[:10] + s[30:]) for s in logical]  # positions 10..29 evicted
    src = [s for row in logical for s in row[30:]]
    dst = [s for row in logical for s in row[10 : len(row) - 20]]
    move_tokens([step.cache], torch.tensor(src), torch.tensor(dst))
    packed = [n - 20 for n in lens_b]
    next_slots = [table_b[r][n // size] * size + n % size for r, n in enumerate(packed)]  # right after the prefix
    step.set(table_b, [n + 1 for n in packed], next_slots)
    out = replay()
    reference = dense_reference(step, [torch.cat((k, step.new_kv[r][None])) for r, k in enumerate(kept)])
    before = expected(cache_before, table_b, lens_b)  # what a replay ignoring the compaction would give
    rows.append(
        ("compaction + rewrite", torch.allclose(out, reference, atol=1e-9), torch.allclose(out, before, atol=1e-9))
    )
    mode = "CUDA graph replay" if graph is not None else "eager (no CUDA: semantics of the step only)"
    print(f"{mode}\n{'scenario':<24}{'sees new metadata':>19}{'sees old metadata':>19}")
    for name, new_seen, old_seen in rows:
        print(f"{name:<24}{new_seen!s:>19}{old_seen!s:>19}")
    want = {
        "in-place rewrite": (True, False),
        "substituted tensors": (graph is None, graph is not None),
        "compaction + rewrite": (True, False),
    }
    ok = all((new_seen, old_seen) == want[name] for name, new_seen, old_seen in rows)
    return {"graph": graph is not None, "rows": [list(r) for r in rows], "ok": ok}


# ---- driver -----------------------------------------------------------------------------------------------


def run_part(name: str, part: Callable[[], dict], summary: dict) -> None:
    print(f"\n=== part {name} ===", flush=True)
    start = time.perf_counter()
    try:
        summary[name] = part()
    except Exception as error:  # one part's failure must not hide the others
        traceback.print_exc()
        summary[name] = {"ok": False, "error": f"{type(error).__name__}: {error}".splitlines()[0]}
    summary[name]["seconds"] = round(time.perf_counter() - start, 1)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    print(f"part {name}: {summary[name]['seconds']} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on CPU, to check the script runs")
    parser.add_argument("--parts", nargs="+", default=["mover", "graphs", "decode", "train", "vllm"])
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --cpu-smoke)")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    smoke = args.cpu_smoke
    device = torch.device(args.device or ("cpu" if smoke else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run with --cpu-smoke to check the script on CPU", file=sys.stderr)
        raise SystemExit(2)
    args.repeats = args.repeats or (2 if smoke else 3)
    # layers, blocks, kv heads, head dim, block size (Qwen3-8B-like: 36 layers, 8 KV heads of 128)
    args.mover_shape = (4, 64, 2, 32, 16) if smoke else (36, 512, 8, 128, 16)
    args.blocks_per_request = 16 if smoke else 64
    args.moves = 200 if smoke else 1024  # tokens moved per call, over all requests
    with_vllm = not smoke and "vllm" in args.parts and gpu_check_vllm.cuda_vllm_missing() is None
    args.budget_mover = 60 if smoke or with_vllm else 90
    decode_s, train_s = (100, 100) if with_vllm else (None, None)  # None: their own defaults
    torch.manual_seed(0)
    print(describe(str(device)))
    summary: dict = {"device": str(device), "smoke": smoke}
    parts = {
        "mover": lambda: part_mover(args, device),
        "graphs": lambda: part_graphs(args, device),
        "decode": lambda: gpu_check_hf.part_decode(device, smoke, decode_s),
        "train": lambda: gpu_check_hf.part_train(device, smoke, train_s),
        "vllm": lambda: gpu_check_vllm.part_vllm(smoke, 200),
    }
    for name in args.parts:
        run_part(name, parts[name], summary)
    summary["ok"] = all(summary[name].get("ok", False) for name in args.parts)
    print("\n" + json.dumps(summary, default=str))
    raise SystemExit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()

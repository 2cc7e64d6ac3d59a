"""The plugin's host time per engine step against batch size and context length, this tree vs a baseline tree.

What one decode step of a served engine runs in the plugin, on synthetic request state (no model,
no KV cache): the scheduler's hooks (`MementoScheduler._before_schedule`: follow each running
request, give back emptied entries; `_forget_finished` after each step's output), the worker's
rewrite before vLLM builds the attention metadata (`runtime.rewrite_before_build`: place the
step's tokens, write physical lengths, packed block-table rows and slots into the runner's
buffers) and its compaction after the forward (`WORKER.after_forward`). The runner is vLLM's own
`BlockTable` / `CpuGpuBuffer` objects with separate device tensors (here on the CPU), as on a
GPU, filled each step with the logical values vLLM's `_prepare_inputs` computes (vLLM's part, not
timed). The K/V copy of a compaction is device work (`kv_mover`): its index tensor is built, the
copy is skipped.

Each request is a memento trace (blocks of 800-1,500 tokens closed by 100-250-token mementos,
the paper's ~6x compression; every block evicted after its memento), grown by prefill chunks
(cut after closing tokens, as the scheduler cuts them) to each context length, then decoded
one token per request per step: blocks close and compact inside the timed steps at their
natural rate. One long-lived process per source tree holds the state; measurements alternate
between them (A B, then B A), repeated. A step's time is the sum of its three parts' medians
over the measurement's steps. Printed: per (requests, context) each tree's median [min-max]
over repeats, and the per-repeat ratios baseline / this tree.

    git archive main src | tar -x -C /tmp/base     # the baseline's source tree
    .venv/bin/python bench/vllm_step_overhead.py --baseline-src /tmp/base/src
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

MARKER = "STEP-BENCH "
TEXT = 100  # token ids 0..99 are text
BS, BE, SS, SE, THINK, END_THINK, IM_START, IM_END, ASSISTANT, USER = range(TEXT, TEXT + 10)


def script(rng: random.Random, length: int) -> list[int]:
    """A memento trace of at least `length` tokens: ChatML prompt, then blocks closed by mementos."""
    text = lambda n: [rng.randrange(TEXT) for _ in range(n)]  # noqa: E731
    tokens = [IM_START, USER, *text(60), IM_END, IM_START, ASSISTANT, THINK]
    while len(tokens) < length:
        tokens += [BS, *text(rng.randint(800, 1500)), BE, SS, *text(rng.randint(100, 250)), SE]
    return tokens


class Engine:
    """Synthetic engine state driven through the plugin's real per-step code (child process)."""

    def __init__(self, requests: int, max_context: int, block_size: int, chunk: int, seed: int) -> None:
        from vllm.v1.utils import ConstantList, CpuGpuBuffer
        from vllm.v1.worker.block_table import BlockTable

        from memento.config import MementoConfig
        from memento.format import SpecialIds
        from memento.vllm.runtime import WORKER
        from memento.vllm.state import RequestStates

        cpu = torch.device("cpu")
        self.block_size, self.chunk = block_size, chunk
        length = max_context + 8192  # room for the decode steps measured at the longest context
        rng = random.Random(seed)
        self.scripts = [script(rng, length) for _ in range(requests)]
        width = -(-max(map(len, self.scripts)) // block_size) + 1
        ids = SpecialIds(BS, BE, SS, SE, THINK, END_THINK, IM_START, IM_END, (IM_START, ASSISTANT))
        config = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)
        tokens = np.zeros((requests, width * block_size), dtype=np.int32)
        for row, tokens_of_row in enumerate(self.scripts):
            tokens[row, : len(tokens_of_row)] = tokens_of_row
        self.runner = SimpleNamespace(
            input_batch=SimpleNamespace(
                block_table=[BlockTable(block_size, requests, width, requests * chunk, False, cpu, 1)],
                num_reqs=0,
                req_ids=[],
                token_ids_cpu=tokens,
            ),
            query_start_loc=CpuGpuBuffer(requests + 1, dtype=torch.int32, device=cpu),
            optimistic_seq_lens_cpu=torch.zeros(requests, dtype=torch.int32),
            seq_lens=torch.zeros(requests, dtype=torch.int32),
            requests={},
            kv_caches=[],
        )
        self.moved = 0
        WORKER.bind(self.runner, block_size, self._move)
        WORKER.states = RequestStates(ids, config, block_size)
        self.released = 0
        manager = SimpleNamespace(_remove_blocks_in_range=self._remove)
        self.requests = [
            SimpleNamespace(
                request_id=f"r{i}", sampling_params=None, num_computed_tokens=0, all_token_ids=ConstantList(s)
            )
            for i, s in enumerate(self.scripts)
        ]
        self.scheduler = SimpleNamespace(
            running=[],
            requests={request.request_id: request for request in self.requests},
            memento_states=RequestStates(ids, config, block_size),
            kv_cache_manager=SimpleNamespace(coordinator=SimpleNamespace(single_type_managers=(manager,))),
            memento_blocks_released=0,
            memento_restarts=0,
        )
        try:  # the scheduler's per-request eviction figures (trees that have them)
            from memento.vllm.telemetry import Telemetry

            self.scheduler.memento_telemetry = Telemetry()
        except ImportError:
            pass
        self.next_block = 1  # 0 is the null block

    def _move(self, caches: list, sources: list[int], targets: list[int]) -> None:
        torch.tensor([sources, targets], dtype=torch.int64)  # the index upload's host part; the copy is device work
        self.moved += len(sources)

    def _remove(self, request_id: str, start: int, stop: int) -> None:
        self.released += stop - start

    def step(self, count_of: list[int]) -> tuple[float, float, float]:
        """One step over requests 0..len(count_of)-1 (row i = request i); seconds in the scheduler's hooks
        (before scheduling, after the step's output), the rewrite before the metadata build, the compaction
        after the forward."""
        from memento.vllm.runtime import WORKER, rewrite_before_build
        from memento.vllm.scheduler import MementoScheduler

        num_reqs = len(count_of)
        requests = self.requests[:num_reqs]
        self.scheduler.running = requests
        start = time.perf_counter()
        MementoScheduler._before_schedule(self.scheduler)
        scheduled = time.perf_counter() - start
        self._prepare_inputs(requests, count_of)  # vLLM's part: logical values, not timed
        start = time.perf_counter()
        rewrite_before_build(self.runner, num_reqs)
        built = time.perf_counter() - start
        start = time.perf_counter()
        WORKER.after_forward()
        compacted = time.perf_counter() - start
        start = time.perf_counter()
        MementoScheduler._forget_finished(self.scheduler)  # `update_from_output`'s part, every step
        scheduled += time.perf_counter() - start
        for request, count in zip(requests, count_of, strict=True):
            request.num_computed_tokens += count
        return scheduled, built, compacted

    def _prepare_inputs(self, requests: list, count_of: list[int]) -> None:
        """What vLLM's scheduler output and `_prepare_inputs` leave in the runner: logical rows, lengths, slots."""
        runner, size = self.runner, self.block_size
        table, num_reqs = runner.input_batch.block_table[0], len(requests)
        runner.input_batch.num_reqs = num_reqs
        runner.input_batch.req_ids = [r.request_id for r in requests]
        computed = np.array([r.num_computed_tokens for r in requests])
        counts = np.array(count_of)
        lengths = computed + counts
        for row, length in enumerate(lengths.tolist()):
            missing = -(-length // size) - int(table.num_blocks_per_row[row])
            if missing > 0:
                table.append_row(list(range(self.next_block, self.next_block + missing)), row)
                self.next_block += missing
        starts = np.concatenate([[0], np.cumsum(counts)])
        runner.query_start_loc.np[: num_reqs + 1] = starts
        runner.query_start_loc.np[num_reqs + 1 :] = starts[-1]
        runner.query_start_loc.copy_to_gpu()
        runner.optimistic_seq_lens_cpu[:num_reqs] = torch.from_numpy(lengths)
        runner.optimistic_seq_lens_cpu[num_reqs:] = 0
        runner.seq_lens[:num_reqs] = torch.from_numpy(lengths)
        runner.seq_lens[num_reqs:] = 0
        table.commit_block_table(num_reqs)
        rows = np.repeat(np.arange(num_reqs), counts)
        positions = np.arange(starts[-1]) - np.repeat(starts[:-1], counts) + np.repeat(computed, counts)
        slots = table.block_table.np[rows, positions // size].astype(np.int64) * size + positions % size
        table.slot_mapping.gpu[: len(slots)] = torch.from_numpy(slots)

    def grow(self, context: int) -> None:
        """Prefill every request to `context` tokens in chunks, each cut right after a closing token."""
        while True:
            count_of = []
            for request in self.requests:
                count = min(self.chunk, context - request.num_computed_tokens)
                state = self.scheduler.memento_states.get(request.request_id, None)
                if count > 1:  # `_reserve_prefill_lookahead`'s cut
                    state.advance(request.all_token_ids, request.num_computed_tokens + count)
                    closing = state.first_closing(request.num_computed_tokens, request.num_computed_tokens + count - 1)
                    if closing is not None:
                        count = closing + 1 - request.num_computed_tokens
                count_of.append(max(count, 0))
            if not any(count_of):
                return
            self.step(count_of)  # rows with 0 tokens: vLLM would not schedule them; the plugin sees a no-op row

    def measure(self, num_reqs: int, steps: int) -> dict:
        gc.collect()
        moved, released = self.moved, self.released
        times = [self.step([1] * num_reqs) for _ in range(steps)]
        return {"times": times, "moved": self.moved - moved, "released": self.released - released}


def child(options: argparse.Namespace) -> None:
    """Serve `grow` / `measure` commands (JSON lines on stdin) for one source tree."""
    engine = Engine(max(options.requests), max(options.contexts), options.block_size, options.chunk, options.seed)
    print(MARKER + json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["do"] == "grow":
            engine.grow(command["context"])
            gc.collect()
            gc.freeze()  # as vLLM does after start-up: the long-lived state is not rescanned on every collection
            reply = {"grown": command["context"]}
        else:
            reply = engine.measure(command["requests"], command["steps"])
        print(MARKER + json.dumps(reply), flush=True)


class Tree:
    """A child process running the plugin from one source tree."""

    def __init__(self, name: str, source: Path, arguments: list[str]) -> None:
        self.name = name
        environment = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": "1"}
        command = [sys.executable, str(Path(__file__).resolve()), *arguments, "--child"]
        self.errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 (lives as long as the child) vLLM's import chatter
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors, text=True, env=environment
        )
        self.read()

    def ask(self, **command: object) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return self.read()

    def read(self) -> dict:
        for line in self.process.stdout:  # type: ignore[union-attr]
            if line.startswith(MARKER):
                return json.loads(line.removeprefix(MARKER))
        self.errors.seek(0)
        sys.exit(f"the {self.name} process ended (exit {self.process.wait()}):\n{self.errors.read()[-4000:]}")


def spread(values: list[float], digits: int = 2) -> str:
    """Median [min-max]."""
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--contexts", type=int, nargs="+", default=[4096, 8192, 16384, 32768])
    parser.add_argument("--steps", type=int, default=20, help="decode steps per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per tree and cell, interleaved")
    parser.add_argument("--block-size", type=int, default=16, help="KV block size (vLLM's GPU default)")
    parser.add_argument("--chunk", type=int, default=2048, help="prefill chunk per request while growing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-src", type=Path, default=None, help="a memento src/ directory to compare with")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options)
        return
    if options.repeats < 1 or options.steps < 1:
        parser.error("--repeats and --steps must be >= 1")
    if options.baseline_src is not None and not (options.baseline_src / "memento" / "vllm").is_dir():
        parser.error(f"--baseline-src {options.baseline_src}: no memento/vllm package there")
    arguments = [a for a in sys.argv[1:] if not a.startswith("--baseline-src") and a != str(options.baseline_src)]
    trees = [Tree("this tree", Path(__file__).resolve().parents[1] / "src", arguments)]
    if options.baseline_src is not None:
        trees.insert(0, Tree("baseline", options.baseline_src.resolve(), arguments))
    results: dict[tuple[int, int], dict[str, list[dict]]] = {}
    for context in sorted(options.contexts):
        for tree in trees:
            tree.ask(do="grow", context=context)
        for repeat in range(options.repeats):
            for num_reqs in options.requests:
                order = trees if repeat % 2 == 0 else trees[::-1]  # A B, then B A: drift hits both alike
                for tree in order:
                    reply = tree.ask(do="measure", requests=num_reqs, steps=options.steps)
                    results.setdefault((num_reqs, context), {}).setdefault(tree.name, []).append(reply)
        print(f"context {context}: measured", file=sys.stderr, flush=True)
    for tree in trees:
        tree.process.stdin.close()  # type: ignore[union-attr]
        tree.process.wait()
    report(options, results, [tree.name for tree in trees])


def report(options: argparse.Namespace, results: dict, names: list[str]) -> None:
    def part_ms(reply: dict, part: int) -> float:
        return statistics.median(parts[part] for parts in reply["times"]) * 1e3

    def total_ms(reply: dict) -> float:  # a step's three parts, each its median over the measurement's steps
        return sum(part_ms(reply, part) for part in range(3))

    print(
        f"plugin host time per decode step (ms): scheduler hook + rewrite + compaction, each the median over "
        f"{options.steps} steps (robust to the OS descheduling a process mid-step on a shared machine); block size "
        f"{options.block_size}; {options.repeats} interleaved measurements per tree: median [min-max]"
    )
    header = f"{'requests':>8} {'context':>8} " + " ".join(f"{name:>22}" for name in names)
    if len(names) == 2:
        header += f" {'baseline/this':>20}"
    header += f" {'this: sched/build/after':>24} {'moved':>7} {'freed':>6}"
    print(header)
    for (num_reqs, context), by_tree in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        line = f"{num_reqs:>8} {context:>8} "
        line += " ".join(f"{spread([total_ms(r) for r in by_tree[name]]):>22}" for name in names)
        this = by_tree[names[-1]]
        if len(names) == 2:
            ratios = [total_ms(b) / total_ms(t) for b, t in zip(by_tree[names[0]], this, strict=True)]
            line += f" {spread(ratios, 1):>20}"
        parts = "/".join(f"{statistics.median(part_ms(r, i) for r in this):.2f}" for i in range(3))
        line += f" {parts:>24} {sum(r['moved'] for r in this):>7} {sum(r['released'] for r in this):>6}"
        print(line)
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} CPUs ({platform.machine()})"
    )


if __name__ == "__main__":
    main()

"""Worker-side memento state: each request's packed KV, kept in step with the scheduler's.

vLLM's attention metadata carries no token ids or request ids, so the plugin wraps three model
runner methods. `_prepare_inputs` marks a real step (dummy and capture runs are left alone).
`_build_attention_metadata` places the step's new tokens from host-side state only (the batch's
tokens, its logical block-table rows, the scheduled counts) and writes the physical lengths,
packed block-table rows and slot mapping in place into the runner's buffers (`rewrite`) before
calling vLLM's, so every backend's unmodified builder reads them. `execute_model` compacts right
after the forward that computed a span's closing token, before the scheduler gives the emptied
blocks to anyone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from memento.vllm.backends import bind_runner
from memento.vllm.checks import check_vllm_config
from memento.vllm.layout import UNCHANGED, StepPlan
from memento.vllm.packed import PackedRow, PackedRows
from memento.vllm.rewrite import PhysicalStep, write_step
from memento.vllm.state import RequestState, RequestStates, engine_config, special_ids_for

TokenMover = Callable[[list[torch.Tensor], list[int], list[int]], None]
"""(every layer's KV cache, source slots, target slots): copy K/V, reading all before writing any."""

_UNSEEN = object()


class _StepRow(NamedTuple):
    """A masked request in the step being run: batch row, logical length after the step, its state and packed row."""

    row: int
    seq_len: int
    state: RequestState
    packed: PackedRow


class WorkerLayouts:
    """The worker's per-request packed layouts (one per process) and the K/V moves that keep them packed.

    Per step and masked request the host work is O(1) plus the step's new tokens and the step's
    events (a block entered, a span compacted, entries given back), never the request's length.
    """

    def __init__(self) -> None:
        self.runner: Any = None  # the model runner of the step being built
        self.states: RequestStates | None = None
        self.block_size = 0  # the KV manager's block size (slot = block * block_size + offset)
        self.move_tokens: TokenMover | None = None
        self.packed = PackedRows()
        self.rows: list[_StepRow] = []
        self.prepared = False  # a real step's inputs were prepared and its metadata is not built yet

    def bind(self, runner: Any, block_size: int, move_tokens: TokenMover) -> None:
        """The runner whose KV cache the plugin drives, its block size and how to move tokens in its cache."""
        self.runner, self.block_size, self.move_tokens = runner, block_size, move_tokens

    def _states(self) -> RequestStates:
        if self.states is None:
            model_config = self.runner.vllm_config.model_config
            config = engine_config()
            special_ids = special_ids_for(model_config.tokenizer, model_config.trust_remote_code, config)
            self.states = RequestStates(special_ids, config, self.block_size)
        return self.states

    def rewrite(self, num_reqs: int) -> None:
        """Before a forward: place the step's new tokens and write the physical inputs into the runner's buffers."""
        step = self.prepare_step(num_reqs)
        if step is not None:
            write_step(self.runner, step, self.packed)

    def prepare_step(self, num_reqs: int) -> PhysicalStep | None:
        """Before a forward: the physical lengths, packed rows and new tokens' places of the masked rows.

        Reads host-side state only (no device-to-host copy). None when no request is masked.
        """
        self.rows.clear()
        runner, size, packed_rows = self.runner, self.block_size, self.packed
        batch = runner.input_batch
        num_reqs = min(num_reqs, batch.num_reqs)
        if num_reqs == 0:
            return None
        starts = runner.query_start_loc.np[: num_reqs + 1].tolist()
        seq_lens = runner.optimistic_seq_lens_cpu[:num_reqs].tolist()
        logical, tokens = batch.block_table[0].block_table.np, batch.token_ids_cpu
        states = self._states()
        known = states.states
        placed = []  # per masked row: (batch row, physical length, packed row, first token, tokens, first slot)
        width = packed_width = 0
        moves: tuple[list[int], list[int]] = ([], [])
        for row, request_id in enumerate(batch.req_ids[:num_reqs]):
            state = known.get(request_id, _UNSEEN)
            if state is _UNSEEN:
                state = states.get(request_id, getattr(runner.requests.get(request_id), "sampling_params", None))
            if state is None:
                continue
            count, seq_len = starts[row + 1] - starts[row], seq_lens[row]
            processed = seq_len - count
            if state.fed < processed:
                state.advance(tokens[row], processed)
            packed = packed_rows.rows.get(request_id) or packed_rows.row(request_id)
            if processed == 0:  # a new request, or one preempted and recomputed: its layout and logical row are new
                state.layout.reset()
                packed_rows.reset(packed)
            entries = -(-seq_len // size)
            if entries != packed.known:
                packed_rows.sync(packed, logical[row], entries, state.layout.released)
            plan = state.layout.begin_step(processed, state.closed_spans)
            if plan is not UNCHANGED:  # moves only when the request restarts
                self._apply(packed, plan, moves)
            first = state.layout.place(count)
            if first + count > len(packed.blocks) * size:
                raise RuntimeError(
                    f"memento: request {request_id} needs {first + count} KV slots in {len(packed.blocks)} blocks"
                )
            placed.append((row, first + count, packed.index, starts[row], count, first))
            width = max(width, entries)
            packed_width = max(packed_width, len(packed.blocks))
            self.rows.append(_StepRow(row, seq_len, state, packed))
        if not placed:
            return None
        self._move(*moves)
        rows, lengths, indices, firsts_in_step, counts, firsts = map(list, zip(*placed, strict=True))
        return PhysicalStep(rows, lengths, indices, firsts_in_step, counts, firsts, width, packed_width)

    def after_forward(self) -> None:
        """Right after a forward: compact every request whose step computed a span's closing token."""
        if self.runner is None or self.states is None:
            return
        moves: tuple[list[int], list[int]] = ([], [])
        tokens = self.runner.input_batch.token_ids_cpu
        for row, seq_len, state, packed in self.rows:
            state.advance(tokens[row], seq_len)
            due = state.layout.spans_applied
            # only a span due (or restart_mode, whose rewinds compare with this length) changes the layout now;
            # entries a crossed block boundary empties are given back at the next step, as the scheduler does
            if state.restarts or (due < len(state.closed_spans) and state.closed_spans[due][0] < seq_len):
                self._apply(packed, state.layout.begin_step(seq_len, state.closed_spans), moves)
        self.rows.clear()
        self._move(*moves)

    def _apply(self, packed: PackedRow, plan: StepPlan, moves: tuple[list[int], list[int]]) -> None:
        """Add the (source, target) slots of the K/V `plan` moves; splice the entries it gives back out of `packed`."""
        if plan.moves:
            # the moves index the entries held before this step's releases (which hold only moved-out tokens)
            blocks = np.asarray(packed.blocks, dtype=np.int64)
            index = np.asarray(plan.moves, dtype=np.int64)
            slots = blocks[index // self.block_size] * self.block_size + index % self.block_size
            moves[0].extend(slots[:, 0].tolist())
            moves[1].extend(slots[:, 1].tolist())
        if plan.released_entries:
            self.packed.release(packed, plan.released_entries)

    def _move(self, sources: list[int], targets: list[int]) -> None:
        if sources:
            self.move_tokens(self.runner.kv_caches, sources, targets)  # type: ignore[misc]

    def forget(self, request_ids: list[str]) -> None:
        """Drop finished requests' state."""
        if self.states is not None:
            self.states.drop(request_ids)
        self.packed.drop(request_ids)


WORKER = WorkerLayouts()


def _num_reqs(args: tuple, kwargs: dict) -> int:
    return int(kwargs["num_reqs"] if "num_reqs" in kwargs else args[1])  # (num_tokens, num_reqs, ...)


def rewrite_before_build(runner: Any, num_reqs: int) -> None:
    """The plugin's part of `_build_attention_metadata`: the step's physical inputs, written in place."""
    if WORKER.runner is not runner:
        bind_runner(runner, WORKER)
    WORKER.rewrite(num_reqs)


def patch_model_runner() -> None:
    """Rewrite each real step's attention inputs; compact right after each forward; forget finished requests."""
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    original_build = GPUModelRunner._build_attention_metadata
    if getattr(original_build, "_memento", False):
        return
    original_init = GPUModelRunner.__init__
    original_initialize_kv_cache = GPUModelRunner.initialize_kv_cache
    original_prepare = GPUModelRunner._prepare_inputs
    original_execute = GPUModelRunner.execute_model

    @functools.wraps(original_init)
    def init(self: Any, vllm_config: Any, *args: Any, **kwargs: Any) -> None:
        check_vllm_config(vllm_config)  # before the model loads
        original_init(self, vllm_config, *args, **kwargs)

    @functools.wraps(original_initialize_kv_cache)
    def initialize_kv_cache(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_initialize_kv_cache(self, *args, **kwargs)
        bind_runner(self, WORKER)  # backends, layers and the token mover, before any request
        return result

    @functools.wraps(original_prepare)
    def prepare_inputs(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_prepare(self, *args, **kwargs)
        WORKER.prepared = True
        return result

    @functools.wraps(original_build)
    def build_attention_metadata(self: Any, *args: Any, **kwargs: Any) -> Any:
        if WORKER.prepared and not kwargs.get("for_cudagraph_capture", False):
            WORKER.prepared = False
            rewrite_before_build(self, _num_reqs(args, kwargs))
        return original_build(self, *args, **kwargs)

    @functools.wraps(original_execute)
    def execute_model(self: Any, scheduler_output: Any, *args: Any, **kwargs: Any) -> Any:
        WORKER.forget(list(scheduler_output.finished_req_ids))
        WORKER.prepared = False
        try:
            result = original_execute(self, scheduler_output, *args, **kwargs)
        finally:
            WORKER.prepared = False
        WORKER.after_forward()
        return result

    build_attention_metadata._memento = True  # type: ignore[attr-defined]
    GPUModelRunner.__init__ = init
    GPUModelRunner.initialize_kv_cache = initialize_kv_cache
    GPUModelRunner._prepare_inputs = prepare_inputs
    GPUModelRunner._build_attention_metadata = build_attention_metadata
    GPUModelRunner.execute_model = execute_model

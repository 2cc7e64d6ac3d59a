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
from dataclasses import dataclass
from typing import Any

import torch

from memento.vllm.backends import bind_runner
from memento.vllm.checks import check_vllm_config
from memento.vllm.rewrite import PhysicalStep, write_step
from memento.vllm.state import RequestState, RequestStates, engine_config, special_ids_for

TokenMover = Callable[[list[torch.Tensor], list[int], list[int]], None]
"""(every layer's KV cache, source slots, target slots): copy K/V, reading all before writing any."""


@dataclass
class _StepRow:
    """A masked request in the step being run: batch row, logical length after the step, table entries."""

    request_id: str
    row: int
    seq_len: int
    entries: list[int]  # block ids of table entries [0, ceil(seq_len / block_size))


def _slot(blocks: list[int], index: int, block_size: int) -> int:
    return blocks[index // block_size] * block_size + index % block_size


class WorkerLayouts:
    """The worker's per-request packed layouts (one per process) and the K/V moves that keep them packed."""

    def __init__(self) -> None:
        self.runner: Any = None  # the model runner of the step being built
        self.states: RequestStates | None = None
        self.block_size = 0  # the KV manager's block size (slot = block * block_size + offset)
        self.move_tokens: TokenMover | None = None
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

    def prepare_step(self, num_reqs: int) -> PhysicalStep | None:
        """Before a forward: the physical lengths, packed rows and new tokens' slots of the masked rows.

        Reads host-side state only (no device-to-host copy). None when no request is masked.
        """
        self.rows.clear()
        runner, size = self.runner, self.block_size
        batch = runner.input_batch
        num_reqs = min(num_reqs, batch.num_reqs)
        if num_reqs == 0:
            return None
        starts = runner.query_start_loc.np[: num_reqs + 1].tolist()
        seq_lens = runner.optimistic_seq_lens_cpu[:num_reqs].tolist()
        logical = batch.block_table[0].block_table.np
        physical = PhysicalStep()
        moves: tuple[list[int], list[int]] = ([], [])
        for row in range(num_reqs):
            request_id = batch.req_ids[row]
            params = getattr(runner.requests.get(request_id), "sampling_params", None)
            state = self._states().get(request_id, params)
            if state is None:
                continue
            count = starts[row + 1] - starts[row]
            step = _StepRow(request_id, row, seq_lens[row], logical[row, : -(-seq_lens[row] // size)].tolist())
            state.advance(batch.token_ids_cpu[row], step.seq_len - count)
            self._compact(step, state, step.seq_len - count, moves)  # moves only when the request restarts
            first = state.layout.place(count)
            held = [step.entries[entry] for entry in state.layout.real_entries(len(step.entries))]
            if first + count > len(held) * size:
                raise RuntimeError(
                    f"memento: request {request_id} needs {first + count} KV slots in {len(held)} blocks"
                )
            physical.rows.append(row)
            physical.seq_lens.append(first + count)
            physical.tables.append(held)
            physical.widths.append(len(step.entries))
            physical.token_index.extend(range(starts[row], starts[row + 1]))
            physical.slots.extend(_slot(held, index, size) for index in range(first, first + count))
            self.rows.append(step)
        if not self.rows:
            return None
        self._move(*moves)
        return physical

    def after_forward(self) -> None:
        """Right after a forward: compact every request whose step computed a span's closing token."""
        if self.runner is None or self.states is None:
            return
        moves: tuple[list[int], list[int]] = ([], [])
        for step in self.rows:
            state = self.states.states.get(step.request_id)
            if state is not None:
                state.advance(self.runner.input_batch.token_ids_cpu[step.row], step.seq_len)
                self._compact(step, state, step.seq_len, moves)
        self.rows.clear()
        self._move(*moves)

    def _compact(self, step: _StepRow, state: RequestState, processed: int, moves: tuple[list[int], list[int]]) -> None:
        """Bring one request's layout to `processed`; add the (source, target) slots of the K/V it moves."""
        plan = state.layout.begin_step(processed, state.closed_spans)
        if not plan.moves:
            return
        # the moves index the entries held before this step's releases (which hold only moved-out tokens)
        held = sorted({*state.layout.real_entries(len(step.entries)), *plan.released_entries})
        blocks = [step.entries[entry] for entry in held]
        moves[0].extend(_slot(blocks, old, self.block_size) for old, _ in plan.moves)
        moves[1].extend(_slot(blocks, new, self.block_size) for _, new in plan.moves)

    def _move(self, sources: list[int], targets: list[int]) -> None:
        if sources:
            self.move_tokens(self.runner.kv_caches, sources, targets)  # type: ignore[misc]

    def forget(self, request_ids: list[str]) -> None:
        """Drop finished requests' state."""
        if self.states is not None:
            self.states.drop(request_ids)


WORKER = WorkerLayouts()


def _num_reqs(args: tuple, kwargs: dict) -> int:
    return int(kwargs["num_reqs"] if "num_reqs" in kwargs else args[1])  # (num_tokens, num_reqs, ...)


def rewrite_before_build(runner: Any, num_reqs: int) -> None:
    """The plugin's part of `_build_attention_metadata`: the step's physical inputs, written in place."""
    if WORKER.runner is not runner:
        bind_runner(runner, WORKER)
    step = WORKER.prepare_step(num_reqs)
    if step is not None:
        write_step(runner, step)


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

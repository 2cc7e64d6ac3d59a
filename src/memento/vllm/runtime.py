"""Worker-side memento state: each request's packed KV, kept in step with the scheduler's.

vLLM's attention metadata carries no token ids or request ids, so the plugin wraps two model
runner methods: `_build_attention_metadata` (to know the runner of the step being built: its
batch holds each request's tokens and block table) and `execute_model` (to compact, right after
the forward that computed a span's closing token, before the scheduler gives the emptied blocks
to anyone). The metadata builder calls `WORKER.prepare_step` to place the step's new tokens.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

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
        self.block_size = 0
        self.move_tokens: TokenMover | None = None
        self.rows: list[_StepRow] = []

    def bind_cache(self, block_size: int, move_tokens: TokenMover) -> None:
        """How the attention backend's cache is paged and how to move tokens in it (its metadata builder)."""
        self.block_size, self.move_tokens = block_size, move_tokens

    def _states(self) -> RequestStates:
        if self.states is None:
            model_config = self.runner.vllm_config.model_config
            config = engine_config()
            special_ids = special_ids_for(model_config.tokenizer, model_config.trust_remote_code, config)
            self.states = RequestStates(special_ids, config, self.block_size)
        return self.states

    def prepare_step(self, common: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Before a forward: physical seq_lens [num_reqs] and block table [num_reqs, W] for vLLM's kernel.

        Rewrites the step's slot mapping in place (the forward's K/V writes share that tensor) so
        new tokens land at each masked request's physical end. None when no request is masked.
        """
        self.rows.clear()
        runner, size = self.runner, self.block_size
        if runner is None or common.num_reqs == 0:
            return None
        batch = runner.input_batch
        num_reqs = min(common.num_reqs, batch.num_reqs)
        starts = common.query_start_loc_cpu.tolist()
        seq_lens = common.seq_lens.tolist()
        tables = [  # block ids of the entries [0, ceil(seq_len / block_size)) of each row
            entries[: -(-length // size)]
            for entries, length in zip(common.block_table_tensor[:num_reqs].tolist(), seq_lens, strict=False)
        ]
        new_slots: list[tuple[int, list[int]]] = []
        moves: tuple[list[int], list[int]] = ([], [])
        for row in range(num_reqs):
            request_id = batch.req_ids[row]
            params = getattr(runner.requests.get(request_id), "sampling_params", None)
            state = self._states().get(request_id, params)
            if state is None:
                continue
            count = starts[row + 1] - starts[row]
            step = _StepRow(request_id, row, seq_lens[row], tables[row])
            state.advance(batch.token_ids_cpu[row], step.seq_len - count)
            self._compact(step, state, step.seq_len - count, moves)  # moves only when the request restarts
            first = state.layout.place(count)
            held = [step.entries[entry] for entry in state.layout.real_entries(len(step.entries))]
            if first + count > len(held) * size:
                raise RuntimeError(
                    f"memento: request {request_id} needs {first + count} KV slots in {len(held)} blocks"
                )
            new_slots.append((row, [_slot(held, index, size) for index in range(first, first + count)]))
            seq_lens[row] = first + count
            tables[row] = held
            self.rows.append(step)
        if not self.rows:
            return None
        self._move(*moves)
        for row, slots in new_slots:
            common.slot_mapping[starts[row] : starts[row + 1]] = torch.tensor(slots)
        width = max(map(len, tables))
        block_table = torch.zeros((common.block_table_tensor.shape[0], width), dtype=common.block_table_tensor.dtype)
        block_table[:num_reqs] = torch.tensor([table + [0] * (width - len(table)) for table in tables])
        physical_lengths = common.seq_lens.clone()
        physical_lengths[: len(seq_lens)] = torch.tensor(seq_lens, dtype=physical_lengths.dtype)
        return physical_lengths, block_table

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


def patch_model_runner() -> None:
    """Expose the runner of the step being built; compact right after each forward; forget finished requests."""
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    original_build = GPUModelRunner._build_attention_metadata
    if getattr(original_build, "_memento", False):
        return
    original_execute = GPUModelRunner.execute_model

    @functools.wraps(original_build)
    def build_attention_metadata(self: Any, *args: Any, **kwargs: Any) -> Any:
        WORKER.runner = self
        result = original_build(self, *args, **kwargs)
        if WORKER.move_tokens is None and getattr(getattr(self, "kv_cache_config", None), "kv_cache_groups", None):
            # another backend built this step's metadata: it would read logical block tables the scheduler frees
            raise RuntimeError("memento: the attention backend in use is not the one the plugin drives (CPU_ATTN)")
        return result

    @functools.wraps(original_execute)
    def execute_model(self: Any, scheduler_output: Any, *args: Any, **kwargs: Any) -> Any:
        WORKER.forget(list(scheduler_output.finished_req_ids))
        result = original_execute(self, scheduler_output, *args, **kwargs)
        WORKER.after_forward()
        return result

    build_attention_metadata._memento = True  # type: ignore[attr-defined]
    GPUModelRunner._build_attention_metadata = build_attention_metadata
    GPUModelRunner.execute_model = execute_model

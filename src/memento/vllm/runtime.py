"""Worker-side memento state: each request's packed KV, kept in step with the scheduler's.

vLLM's attention metadata carries no token ids or request ids, so the plugin wraps two model
runner methods: `_build_attention_metadata` (to know the runner of the step being built: its
batch holds each request's tokens and block table) and `execute_model` (to compact, right after
the forward that computed a span's closing token, before the scheduler gives the emptied blocks
to anyone). The metadata builder calls `prepare_step` to place the step's new tokens.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch

from memento.vllm.state import RequestStates, engine_config, special_ids_for

_runner: Any = None
_states: RequestStates | None = None
_cache_writer: tuple[str, int] | None = None  # (kernel ISA, block size) of the cache layout


@dataclass
class _Row:
    request_id: str
    row: int
    seq_len: int
    entries: list[int]  # block ids of table entries [0, ceil(seq_len / block_size))


_step_rows: list[_Row] = []


def set_cache_writer(isa: str, block_size: int) -> None:
    """Record how vLLM's CPU kernel lays K/V out (called by the metadata builder)."""
    global _cache_writer
    _cache_writer = (isa, block_size)


def _request_states(runner: Any, block_size: int) -> RequestStates:
    global _states
    if _states is None:
        model_config = runner.vllm_config.model_config
        _states = RequestStates(
            special_ids_for(model_config.tokenizer, model_config.trust_remote_code), engine_config(), block_size
        )
    return _states


def _slot(entries: list[int], index: int, block_size: int) -> int:
    return entries[index // block_size] * block_size + index % block_size


def _compact(step: _Row, state: Any, processed: int, block_size: int) -> tuple[list[int], list[int]]:
    """Bring one request's layout to `processed`; the (source, target) slots of the K/V it moves."""
    plan = state.layout.begin_step(processed, state.closed_spans)
    if not plan.moves:
        return [], []
    # the moves index the entries held before this step's releases (which hold only moved-out tokens)
    held = sorted({*state.layout.real_entries(len(step.entries)), *plan.released_entries})
    real = [step.entries[entry] for entry in held]
    return [_slot(real, old, block_size) for old, _ in plan.moves], [
        _slot(real, new, block_size) for _, new in plan.moves
    ]


def _move(runner: Any, sources: list[int], targets: list[int]) -> None:
    from memento.vllm.attention import move_tokens

    if sources:
        isa, block_size = _cache_writer  # type: ignore[misc]
        move_tokens(runner.kv_caches, isa, block_size, sources, targets)


def prepare_step(common: Any, block_size: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Before a forward: the physical seq_lens [num_reqs] and block table [num_reqs, W] vLLM's kernel runs on.

    Rewrites the step's slot mapping in place (the forward's K/V writes share that tensor) so
    new tokens land at each masked request's physical end. None when no request is masked.
    """
    runner = _runner
    _step_rows.clear()
    if runner is None or common.num_reqs == 0:
        return None
    batch = runner.input_batch
    states = _request_states(runner, block_size)
    num_reqs = min(common.num_reqs, batch.num_reqs)
    starts = common.query_start_loc_cpu.tolist()
    seq_lens = common.seq_lens.tolist()
    tables = [  # block ids of the entries [0, ceil(seq_len / block_size)) of each row
        entries[: -(-length // block_size)]
        for entries, length in zip(common.block_table_tensor[:num_reqs].tolist(), seq_lens, strict=False)
    ]
    new_slots: list[tuple[int, list[int]]] = []
    sources: list[int] = []
    targets: list[int] = []
    for row in range(num_reqs):
        request_id = batch.req_ids[row]
        state = states.get(request_id, getattr(runner.requests.get(request_id), "sampling_params", None))
        if state is None:
            continue
        count = starts[row + 1] - starts[row]
        processed = seq_lens[row] - count
        step = _Row(request_id, row, seq_lens[row], tables[row])
        state.advance(batch.token_ids_cpu[row], processed)
        moved = _compact(step, state, processed, block_size)  # nothing to move unless the step was rebuilt
        sources += moved[0]
        targets += moved[1]
        first = state.layout.place(count)
        real = [step.entries[entry] for entry in state.layout.real_entries(len(step.entries))]
        if first + count > len(real) * block_size:
            raise RuntimeError(
                f"memento: request {request_id} needs {first + count} KV slots, holds {len(real)} blocks"
            )
        new_slots.append((row, [_slot(real, index, block_size) for index in range(first, first + count)]))
        seq_lens[row] = first + count
        tables[row] = real
        _step_rows.append(step)
    if not _step_rows:
        return None
    _move(runner, sources, targets)
    for row, slots in new_slots:
        common.slot_mapping[starts[row] : starts[row + 1]] = torch.tensor(slots)
    width = max(map(len, tables))
    padded = [table + [0] * (width - len(table)) for table in tables]
    block_table = torch.zeros((common.block_table_tensor.shape[0], width), dtype=common.block_table_tensor.dtype)
    block_table[:num_reqs] = torch.tensor(padded, dtype=block_table.dtype)
    physical_lengths = common.seq_lens.clone()
    physical_lengths[: len(seq_lens)] = torch.tensor(seq_lens, dtype=physical_lengths.dtype)
    return physical_lengths, block_table


def after_forward() -> None:
    """Right after a forward: compact every request whose step computed a span's closing token."""
    runner = _runner
    if runner is None or not _step_rows or _states is None:
        return
    _, block_size = _cache_writer  # type: ignore[misc]
    sources: list[int] = []
    targets: list[int] = []
    for step in _step_rows:
        state = _states.states.get(step.request_id)
        if state is None:
            continue
        state.advance(runner.input_batch.token_ids_cpu[step.row], step.seq_len)
        moved = _compact(step, state, step.seq_len, block_size)
        sources += moved[0]
        targets += moved[1]
    _step_rows.clear()
    _move(runner, sources, targets)


def forget(request_ids: list[str]) -> None:
    """Drop finished requests' state."""
    if _states is not None:
        _states.drop(request_ids)


def patch_model_runner() -> None:
    """Expose the runner of the step being built; compact right after each forward; forget finished requests."""
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    original_build = GPUModelRunner._build_attention_metadata
    if getattr(original_build, "_memento", False):
        return
    original_execute = GPUModelRunner.execute_model

    @functools.wraps(original_build)
    def build_attention_metadata(self: Any, *args: Any, **kwargs: Any) -> Any:
        global _runner
        _runner = self
        return original_build(self, *args, **kwargs)

    @functools.wraps(original_execute)
    def execute_model(self: Any, scheduler_output: Any, *args: Any, **kwargs: Any) -> Any:
        forget(list(scheduler_output.finished_req_ids))
        result = original_execute(self, scheduler_output, *args, **kwargs)
        after_forward()
        return result

    build_attention_metadata._memento = True  # type: ignore[attr-defined]
    GPUModelRunner._build_attention_metadata = build_attention_metadata
    GPUModelRunner.execute_model = execute_model

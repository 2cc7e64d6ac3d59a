"""vLLM schedulers: memento eviction that gives KV blocks back to the pool, and a counting baseline.

A request's live KV is kept packed (see `memento.vllm.layout`): once the ``<|summary_end|>`` that
closes a span has had its own forward (that token still attends to the block), the worker moves
the tokens after the span down and this scheduler gives back every block-table entry that then
holds nothing (vLLM's null block takes its place, so later entries keep their logical index and
positions never move). Prefill chunks (prompts holding finished blocks, recompute after a
preemption) are cut right after each closing token, so every forward is plain causal attention
over the packed cache. A preempted request is recomputed from its start and re-evicts as it goes.
In restart_mode, once a memento's closing token has run (its block then leaves the cache with its
delimiters), the request is rewound to that memento's ``<|summary_start|>`` and the memento is
computed again with the block out of sight, as the authors' engine does; the token sampled after
``<|summary_end|>`` stays (it was sampled with the block visible, as in `MementoGenerator`).

Use with ``--scheduler-cls memento.vllm.scheduler.MementoScheduler`` (`memento serve --backend
vllm` sets it).
"""

from __future__ import annotations

from typing import Any

from vllm.v1.core.sched.scheduler import Scheduler

from memento.vllm.checks import check_vllm_config
from memento.vllm.state import RequestStates, engine_config, special_ids_for
from memento.vllm.telemetry import Telemetry


class CountingScheduler(Scheduler):
    """vLLM's `Scheduler` unchanged, plus the figures benchmarks compare: peak KV blocks in use, preemptions,
    requests running per step."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.memento_peak_blocks_in_use = 0
        self.memento_preemptions = 0
        self.memento_steps = 0
        self.memento_running_sum = 0  # requests running, summed over steps (mean = sum / steps)

    def _preempt_request(self, *args: Any, **kwargs: Any) -> Any:
        self.memento_preemptions += 1
        return super()._preempt_request(*args, **kwargs)

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        self._before_schedule()
        output = super().schedule(*args, **kwargs)
        pool = self.kv_cache_manager.block_pool
        in_use = pool.num_gpu_blocks - 1 - pool.get_num_free_blocks()  # the null block is never free
        self.memento_peak_blocks_in_use = max(self.memento_peak_blocks_in_use, in_use)
        if output.total_num_scheduled_tokens:
            self.memento_steps += 1
            self.memento_running_sum += len(self.running)
        return output

    def _before_schedule(self) -> None:
        """Hook run before each step is scheduled."""


class MementoScheduler(CountingScheduler):
    """`Scheduler` plus memento eviction; counts the KV blocks it released."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_vllm_config(self.vllm_config)  # prefix caching etc.; also here: a V2 runner never reaches the V1 hooks
        model_config = self.vllm_config.model_config
        if len(self.kv_cache_config.kv_cache_groups) != 1:
            raise ValueError(
                "memento block masking supports models with one KV cache group (every layer full attention); "
                f"this model has {len(self.kv_cache_config.kv_cache_groups)}"
            )
        config = engine_config()
        self.memento_states = RequestStates(
            special_ids_for(model_config.tokenizer, model_config.trust_remote_code, config),
            config,
            self.cache_config.block_size,
        )
        self.memento_blocks_released = 0
        self.memento_restarts = 0  # restart_mode: mementos recomputed without their block
        self.memento_telemetry = Telemetry()  # /metrics counters and per-response figures

    def _preempt_request(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        state = self.memento_states.get(request.request_id, request.sampling_params)
        if state is not None:
            state.restart_from_scratch()  # its blocks all go back; the recompute re-evicts as it passes each span
        return super()._preempt_request(request, *args, **kwargs)

    def _reserve_prefill_lookahead(self, request: Any, num_computed_tokens: int, num_new_tokens: int) -> int:
        """vLLM's per-request chunk hook: also end a chunk right after a token that closes a span."""
        count = super()._reserve_prefill_lookahead(request, num_computed_tokens, num_new_tokens)
        state = self.memento_states.get(request.request_id, request.sampling_params)
        if state is None or count <= 1:
            return count
        state.advance(request.all_token_ids, request.num_tokens)
        closing = state.first_closing(num_computed_tokens, num_computed_tokens + count - 1)
        return count if closing is None else closing + 1 - num_computed_tokens

    def _before_schedule(self) -> None:
        """Give back the entries the running requests' layouts emptied.

        The worker compacted them right after the forward that computed the closing token, so the
        blocks hold nothing live and may go to any request scheduled now.
        """
        (manager,) = self.kv_cache_manager.coordinator.single_type_managers
        held = unmasked = 0
        for request in self.running:
            state = self.memento_states.get(request.request_id, request.sampling_params)
            if state is None:
                continue
            computed = request.num_computed_tokens
            state.advance(request.all_token_ids, computed)
            applied = state.layout.spans_applied
            plan = state.layout.begin_step(computed, state.closed_spans)
            for entry in plan.released_entries:
                manager._remove_blocks_in_range(request.request_id, entry, entry + 1)
            self.memento_blocks_released += len(plan.released_entries)
            live = len(state.layout.positions)
            evicted = [span for _, span in state.closed_spans[applied : state.layout.spans_applied]]
            self.memento_telemetry.step(request.request_id, live, computed, len(plan.released_entries), evicted)
            held, unmasked = held + live, unmasked + computed
            memento = state.due_restart(computed)
            if memento is not None:  # restart_mode: compute the memento again, its block now out of sight
                request.num_computed_tokens = memento.start
                state.rewind(memento)
                self.memento_restarts += 1
        self.memento_telemetry.totals(held, unmasked)

    def _free_request(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        """vLLM's, plus the request's eviction figures in its output's `kv_transfer_params` (no KV connector
        runs under the plugin, so the field is free; `memento.vllm.responses` moves them into ``usage``)."""
        kv_params, ec_params = super()._free_request(request, *args, **kwargs)
        figures = self.memento_telemetry.finish(request.request_id)
        return (kv_params if kv_params is not None else figures), ec_params

    def finish_requests(self, *args: Any, **kwargs: Any) -> Any:
        result = super().finish_requests(*args, **kwargs)
        self._forget_finished()
        return result

    def update_from_output(self, *args: Any, **kwargs: Any) -> Any:
        result = super().update_from_output(*args, **kwargs)
        self._forget_finished()
        return result

    def _forget_finished(self) -> None:
        self.memento_states.drop(r for r in self.memento_states.states if r not in self.requests)
        self.memento_telemetry.forget(r for r in self.memento_telemetry.requests if r not in self.requests)

"""vLLM scheduler that gives evicted blocks' KV memory back to the pool.

Before each scheduling step, every running request's new tokens go through its tracker; a span
evicted by a ``<|summary_end|>`` at position p is released once p's own forward has run (that
token still attends to the block). Whole KV blocks inside the span are freed and replaced by
vLLM's null block, which keeps every later block at its logical index, so positions never move;
the partly covered blocks at the span's edges stay and are masked in attention. A preempted
request gets all its blocks back when it is recomputed; its spans are freed again once the
recompute has passed them.

Use with ``--scheduler-cls memento.vllm.scheduler.MementoScheduler`` (`memento serve --backend
vllm` sets it).
"""

from __future__ import annotations

from typing import Any

from vllm.v1.core.sched.scheduler import Scheduler

from memento.vllm.state import RequestStates, engine_config, special_ids_for


class CountingScheduler(Scheduler):
    """vLLM's `Scheduler` unchanged, plus the figures benchmarks compare: peak KV blocks in use, preemptions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.memento_peak_blocks_in_use = 0
        self.memento_preemptions = 0

    def _preempt_request(self, *args: Any, **kwargs: Any) -> Any:
        self.memento_preemptions += 1
        return super()._preempt_request(*args, **kwargs)

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        output = super().schedule(*args, **kwargs)
        pool = self.kv_cache_manager.block_pool
        in_use = pool.num_gpu_blocks - 1 - pool.get_num_free_blocks()  # the null block is never free
        self.memento_peak_blocks_in_use = max(self.memento_peak_blocks_in_use, in_use)
        return output


class MementoScheduler(CountingScheduler):
    """`Scheduler` plus memento eviction; counts the KV blocks it released."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.cache_config.enable_prefix_caching:
            raise ValueError(
                "memento block masking needs prefix caching off: KV computed under the memento mask would be "
                "reused as if it were unmasked (pass enable_prefix_caching=False / --no-enable-prefix-caching)"
            )
        model_config = self.vllm_config.model_config
        self.memento_states = RequestStates(
            special_ids_for(model_config.tokenizer, model_config.trust_remote_code), engine_config()
        )
        self.memento_blocks_released = 0

    def _release_evicted_blocks(self) -> None:
        managers = self.kv_cache_manager.coordinator.single_type_managers
        for request in self.running:
            state = self.memento_states.get(request.request_id, request.sampling_params)
            if state is None:
                continue
            processed = request.num_computed_tokens - getattr(request, "num_in_flight_tokens", 0)
            state.advance(request.all_token_ids, min(request.num_tokens, max(processed, 0)))
            for closed_at, span in state.closed_spans:
                if closed_at >= processed:
                    break  # its closing token has not run yet
                for manager in managers:
                    size = manager.block_size
                    first, stop = -(-span.start // size), span.stop // size  # blocks wholly inside the span
                    blocks = manager.req_to_blocks.get(request.request_id, [])
                    stop = min(stop, len(blocks))
                    if first >= stop or blocks[stop - 1] is manager._null_block:
                        continue  # no whole block, or released already (the range is freed from its end)
                    live = sum(1 for block in blocks[first:stop] if block is not manager._null_block)
                    manager._remove_blocks_in_range(request.request_id, first, stop)
                    self.memento_blocks_released += live

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        self._release_evicted_blocks()
        return super().schedule(*args, **kwargs)

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

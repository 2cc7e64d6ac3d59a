"""Worker-side bookkeeping: the model runner's batch -> per-request ``hidden_from`` tensors.

vLLM's attention metadata carries no token ids, so the plugin wraps the model runner's
`_build_attention_metadata` to remember the runner of the step being built; the attention
backend's metadata builder then reads each request's tokens and sampling params from it.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from memento.vllm.state import NEVER, RequestStates, engine_config, special_ids_for

_runner: Any = None
_states: RequestStates | None = None
_last_seen: dict[str, int] = {}
_builds = 0
_FORGET_AFTER = 4096  # builds without a request before its state is dropped (finished or long preempted)


def worker_hidden_from(seq_lens: list[int]) -> torch.Tensor | None:
    """For the batch being built: hidden_from [num_reqs, longest] (NEVER where nothing is hidden), or None."""
    global _builds, _states
    runner = _runner
    if runner is None or not seq_lens:
        return None
    if _states is None:
        model_config = runner.vllm_config.model_config
        _states = RequestStates(
            special_ids_for(model_config.tokenizer, model_config.trust_remote_code), engine_config()
        )
    _builds += 1
    batch = runner.input_batch
    result = torch.full((len(seq_lens), max(seq_lens)), NEVER, dtype=torch.long)
    masked = False
    for row, seq_len in enumerate(seq_lens):
        if row >= batch.num_reqs:
            continue
        request_id = batch.req_ids[row]
        _last_seen[request_id] = _builds
        state = _states.get(request_id, getattr(runner.requests.get(request_id), "sampling_params", None))
        if state is None:
            continue
        state.advance(batch.token_ids_cpu[row], seq_len)
        result[row, :seq_len] = state.hidden_from[:seq_len]
        masked = True
    if _builds % 256 == 0:
        stale = [r for r, seen in _last_seen.items() if _builds - seen > _FORGET_AFTER]
        _states.drop(stale)
        for request_id in stale:
            del _last_seen[request_id]
    return result if masked else None


def patch_model_runner() -> None:
    """Make the runner of the step being built visible to the attention metadata builder."""
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    original = GPUModelRunner._build_attention_metadata
    if getattr(original, "_memento", False):
        return

    @functools.wraps(original)
    def build_attention_metadata(self: Any, *args: Any, **kwargs: Any) -> Any:
        global _runner
        _runner = self
        return original(self, *args, **kwargs)

    build_attention_metadata._memento = True  # type: ignore[attr-defined]
    GPUModelRunner._build_attention_metadata = build_attention_metadata

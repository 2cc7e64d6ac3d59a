"""Per-request ``block_masking_config`` checked at admission, before the request reaches the engine.

vLLM 0.32 calls each custom logits processor's `validate_params` classmethod on every request's
`SamplingParams` in the frontend (`v1/engine/input_processor.py`); a `VLLMValidationError` there
becomes an HTTP 400 in the OpenAI error shape (``param`` names the field) and the engine never
sees the request. `RequestValidator` is that hook and nothing else: it leaves logits unchanged.
Without it, a bad config would raise inside the engine core's scheduler and end the engine.
"""

from __future__ import annotations

from typing import Any

import torch
from vllm.exceptions import VLLMValidationError
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor

from memento.config import MementoConfigError
from memento.vllm.state import REQUEST_KEY, engine_config, request_config

REQUEST_FIELD = f"vllm_xargs.{REQUEST_KEY}"
"""How a client names the option: ``extra_body={"vllm_xargs": {"block_masking_config": "<json>"}}``."""


def validate_request(params: Any) -> None:
    """Raise `VLLMValidationError` (HTTP 400) naming the field and the reason when a request's config is unusable."""
    try:
        config = request_config(getattr(params, "extra_args", None), engine_config())
    except MementoConfigError as error:  # its message already reads "block_masking_config.<field>: <reason>"
        parameter = f"vllm_xargs.{error.args[0].split(':', 1)[0]}"
        raise VLLMValidationError(f"vllm_xargs.{error}", parameter=parameter) from None
    except ValueError as error:
        raise VLLMValidationError(f"{REQUEST_FIELD}: {error}", parameter=REQUEST_FIELD) from None
    if config is not None and config.restart_mode and getattr(params, "prompt_logprobs", None) is not None:
        raise VLLMValidationError(
            f"{REQUEST_FIELD}: restart_mode cannot return prompt_logprobs (a memento in the prompt is computed "
            "twice, with and without its block)",
            parameter="prompt_logprobs",
        )


class RequestValidator(LogitsProcessor):
    """vLLM's admission hook for the memento options of each request; a no-op on logits."""

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        validate_request(sampling_params)

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        pass

    def is_argmax_invariant(self) -> bool:
        return True

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        pass

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

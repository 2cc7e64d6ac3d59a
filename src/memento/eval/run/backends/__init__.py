"""Generation backends of `memento eval`: hf, vllm, openai (one `Backend` protocol; see `base`)."""

from __future__ import annotations

from memento.eval.run.backends.base import Backend, BackendError, Sample

__all__ = ["Backend", "BackendError", "Sample"]

"""How responses are sampled: the paper's defaults, and one reproducible seed per sample."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

SEED_BITS = 63
"""Seeds fit a signed 64-bit integer (vLLM's and the OpenAI API's `seed` range)."""


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters; defaults are the paper's (temperature 0.6, top_p 0.95, top_k 20, 32K tokens).

    temperature 0 is greedy decoding; top_k 0 turns top-k filtering off; top_p 1.0 turns nucleus
    filtering off.
    """

    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    max_new_tokens: int = 32768

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_seed(run_seed: int, problem_id: str, sample_index: int) -> int:
    """The seed of sample `sample_index` of `problem_id` in a run seeded with `run_seed`.

    Derived by hashing, so it depends on nothing else: not on the mode (modes are compared on
    the same random numbers), the batch, the backend, or which samples a resumed run still had to do.
    """
    digest = hashlib.sha256(f"{run_seed}\x00{problem_id}\x00{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)

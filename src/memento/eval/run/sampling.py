"""One reproducible seed per sample (the sampling options themselves are `memento.inference.sampling.SamplingOptions`;
`EvalOptions` holds the paper's values)."""

from __future__ import annotations

import hashlib

SEED_BITS = 63
"""Seeds fit a signed 64-bit integer (vLLM's and the OpenAI API's `seed` range)."""


def sample_seed(run_seed: int, problem_id: str, sample_index: int) -> int:
    """The seed of sample `sample_index` of `problem_id` in a run seeded with `run_seed`.

    Derived by hashing, so it depends on nothing else: not on the mode (modes are compared on
    the same random numbers), the batch, the backend, or which samples a resumed run still had to do.
    """
    digest = hashlib.sha256(f"{run_seed}\x00{problem_id}\x00{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)

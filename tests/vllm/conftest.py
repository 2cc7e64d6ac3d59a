"""The vLLM plugin's tests carry the `vllm` marker (deselect them with ``-m "not vllm"``).

`make test-fast` builds no vLLM: there the modules that import vLLM when they load are not
collected. `make test` installs vLLM and sets MEMENTO_REQUIRE_VLLM=1, so a missing vLLM fails
collection there instead of hiding tests.
"""

import importlib.util
import os

VLLM_AT_IMPORT = ["test_attention.py", "test_logits.py"]

collect_ignore = (
    VLLM_AT_IMPORT if importlib.util.find_spec("vllm") is None and not os.environ.get("MEMENTO_REQUIRE_VLLM") else []
)

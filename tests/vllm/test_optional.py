"""The core package imports and works without vLLM installed."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK_VLLM = "import sys; sys.modules['vllm'] = None\n"  # any `import vllm` now raises ImportError


def test_core_package_never_imports_vllm():
    code = BLOCK_VLLM + (
        "import memento, memento.cli, memento.attention, memento.inference\n"
        "import memento.training, memento.data, memento.kv, memento.toy.demo\n"
        "from memento.cli import main\n"
        "assert main(['kv', 'examples/traces/memento_trace_code.json', '--json']) == 0\n"
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-2000:]


@pytest.mark.vllm
def test_the_plugin_is_inert_unless_configured(monkeypatch):
    from memento.vllm import plugin
    from memento.vllm.state import CONFIG_ENV

    monkeypatch.delenv(CONFIG_ENV, raising=False)
    plugin.register()  # returns before touching vLLM: plain vLLM stays plain
    from vllm.v1.attention.backends.registry import AttentionBackendEnum

    assert "memento" not in AttentionBackendEnum.CPU_ATTN.get_path()

"""`memento serve --model smollm2 --plain`: a real chat model through vLLM without memento attention, and the
README's prompted quickstart run against it as written (the official openai client inside `memento prompted`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.docs.pages import ROOT, read_blocks
from tests.docs.test_commands import memento_commands

pytestmark = [pytest.mark.vllm, pytest.mark.slow]  # SmolLM2 through vLLM: about a minute to start


def _quickstart() -> tuple[list[str], list[str]]:
    """The README's prompted quickstart: its `memento serve` and `memento prompted` argv."""
    blocks, _ = read_blocks(ROOT / "README.md")
    (block,) = [b for b in blocks if "memento prompted" in b.code and "memento serve" in b.code]
    commands = {argv[0]: argv for argv in memento_commands(block)}
    return commands["serve"], commands["prompted"]


def _without(argv: list[str], flag: str) -> list[str]:
    index = argv.index(flag)
    return argv[:index] + argv[index + 2 :]


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory, smollm2_checkpoint):  # converted once per session; serve finds it cached
    from tests.servers import serving

    serve, _ = _quickstart()
    separator = serve.index("--")
    arguments = [*_without(serve[1:separator], "--port"), "--memory-fraction", "0.1"]  # vLLM CPU checks it is free
    with serving(
        arguments, tmp_path_factory.mktemp("chat"), vllm_arguments=tuple(serve[separator + 1 :]), startup_s=600
    ) as running:
        yield running


def test_readme_prompted_quickstart_runs_against_the_local_chat_endpoint(chat_server):
    client, base_url = chat_server
    (model,) = client.models.list().data
    assert model.id == "smollm2" and model.model_extra["max_model_len"] == 8192
    _, prompted = _quickstart()
    index = prompted.index("--base-url")
    prompted[index + 1] = base_url  # the README's port is taken by nothing here; the test server's is free
    done = subprocess.run([sys.executable, "-m", "memento.cli", *prompted], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["answer"] and result["rounds"] >= 1 and not result["usage_approximate"], result
    assert result["total_completion_tokens"] > 0 and result["peak_context_tokens"] <= 8192

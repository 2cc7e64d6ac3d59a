"""`memento serve --backend vllm`: a real server on 127.0.0.1 and the official `openai` client."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from openai import OpenAI

from memento.config import MementoConfig
from memento.inference import MementoGenerator
from memento.inference.loading import load_model_and_tokenizer
from memento.toy import CHECKPOINT

PROBLEM = "sum mod 10: a:3 b:4 c:5 d:1 e:2 f:3 g:9 h:9 i:0 j:1 k:2 l:8 m:6 n:2"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "memento.cli",
        "serve",
        "--backend",
        "vllm",
        "--model",
        str(CHECKPOINT),
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--max-model-len",
        "1024",
        "--block-size",
        "32",
        "--num-blocks",
        "64",
        "--block-masking-config",
        '{"enable": true, "keep_last_n_blocks": 0, "mask_delimiters": false}',
        "--",
        "--enforce-eager",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=120)
    deadline = time.time() + 180
    while True:
        if process.poll() is not None:
            pytest.fail(f"memento serve exited with {process.returncode}: {process.stderr.read()[-3000:]}")
        try:
            client.models.list()
            break
        except Exception:
            if time.time() > deadline:
                process.kill()
                pytest.fail("memento serve did not come up within 180 s")
            time.sleep(1)
    yield client
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def _reference(config: MementoConfig) -> str:
    model, tokenizer = load_model_and_tokenizer(CHECKPOINT, dtype="float32", device="cpu")
    return MementoGenerator(model, tokenizer, config).generate([PROBLEM], max_new_tokens=420)[0].text


def test_chat_completion_shows_markers_and_equals_memento_generator(server):
    model = server.models.list().data[0].id
    response = server.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": PROBLEM}],
        max_tokens=420,
        temperature=0,
        extra_body={"skip_special_tokens": False},
    )
    text = response.choices[0].message.content
    assert text.count("<|summary_end|>") == 5 and "<|block_start|>" in text
    assert text.split("</think>")[1].strip() == "5"  # (3+4+5+1+2+3+9+9+0+1+2+8+6+2) mod 10
    reference = _reference(MementoConfig(mask_delimiters=False))
    assert text == reference.removesuffix("<|im_end|>")


def test_per_request_config_through_vllm_xargs(server):
    model = server.models.list().data[0].id
    capped = {"enable": True, "keep_last_n_blocks": 0, "mask_delimiters": False, "max_block_tokens": 20}
    response = server.completions.create(
        model=model,
        prompt=f"<|im_start|>user\n{PROBLEM}<|im_end|>\n<|im_start|>assistant\n",
        max_tokens=200,
        temperature=0,
        extra_body={"skip_special_tokens": False, "vllm_xargs": {"block_masking_config": json.dumps(capped)}},
    )
    text = response.choices[0].text
    blocks = [part.split("<|block_end|>")[0] for part in text.split("<|block_start|>")[1:]]
    assert blocks and all(len(block) <= 20 for block in blocks)  # one character per token in the toy vocabulary
    assert text == _reference(MementoConfig.from_dict(capped)).removesuffix("<|im_end|>")[: len(text)]

"""`memento serve --backend vllm`: a real server on 127.0.0.1 and the official `openai` client."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from openai import APIStatusError, OpenAI

from memento.config import MementoConfig
from memento.format import THINK_END, THINK_START
from memento.inference import MementoGenerator
from memento.inference.loading import load_model_and_tokenizer
from memento.toy import CHECKPOINT
from memento.toy.task import ToyTask
from tests.servers import serving

pytestmark = [pytest.mark.vllm, pytest.mark.slow]  # the server takes 25-55 s to start

SERVER_CONFIG = '{"enable": true, "keep_last_n_blocks": 0, "mask_delimiters": false}'
PROBLEM = "sum mod 10: a:3 b:4 c:5 d:1 e:2 f:3 g:9 h:9 i:0 j:1 k:2 l:8 m:6 n:2"


@pytest.fixture(scope="module")
def log_directory(tmp_path_factory):
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def server(log_directory):
    arguments = ["--backend", "vllm", "--model", str(CHECKPOINT), "--dtype", "float32", "--max-model-len", "1024"]
    arguments += ["--block-size", "32", "--num-blocks", "64", "--block-masking-config", SERVER_CONFIG]
    arguments += ["--memory-fraction", "0.1"]  # vLLM CPU checks that much memory is free; 64 blocks need far less
    with serving(arguments, log_directory, startup_s=180, client_timeout_s=120) as (client, _):
        yield client


def _reference(config: MementoConfig) -> str:
    model, tokenizer = load_model_and_tokenizer(CHECKPOINT, dtype="float32", device="cpu")
    return MementoGenerator(model, tokenizer, config).generate([PROBLEM], max_new_tokens=420)[0].text


def test_chat_completion_reasoning_and_answer_equal_memento_generator(server):
    """The memento reasoning parser (on by default): the thinking with its blocks and mementos in
    `reasoning_content`, the answer in `content`, streamed or not; together they are MementoGenerator's text."""
    model = server.models.list().data[0].id
    request = {"model": model, "messages": [{"role": "user", "content": PROBLEM}], "max_tokens": 420, "temperature": 0}
    message = server.chat.completions.create(**request).choices[0].message
    reasoning = message.model_extra["reasoning_content"]
    assert reasoning.count("<|summary_end|>") == 5 and "<|block_start|>" in reasoning and "</think>" not in reasoning
    assert message.content.strip() == "5"  # (3+4+5+1+2+3+9+9+0+1+2+8+6+2) mod 10
    reference = _reference(MementoConfig(mask_delimiters=False))
    assert f"{THINK_START}{reasoning}{THINK_END}{message.content}" == reference.removesuffix("<|im_end|>")
    streamed = {"reasoning_content": [], "content": []}
    for chunk in server.chat.completions.create(**request, stream=True):
        delta = chunk.choices[0].delta if chunk.choices else None
        for field in streamed if delta is not None else ():
            streamed[field].append((delta.model_extra or {}).get(field) or getattr(delta, field, None) or "")
    assert "".join(streamed["reasoning_content"]) == reasoning and "".join(streamed["content"]) == message.content


def _memento_series(base_url: str) -> dict[str, float]:
    text = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=30).text
    return {
        name: float(value)
        for name, value in (line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("memento_"))
    }


def test_metrics_and_usage_report_evictions(server):
    """`memento_*` counters on vLLM's /metrics (from the engine core's scheduler) grow by exactly what the
    response's `usage.memento` reports for it; the KV held is below its unmasked equivalent."""
    base_url = str(server.base_url).rstrip("/")
    before = _memento_series(base_url)
    response = server.chat.completions.create(
        model=server.models.list().data[0].id,
        messages=[{"role": "user", "content": PROBLEM}],
        max_tokens=420,
        temperature=0,
    )
    figures = response.usage.model_extra["memento"]
    after = _memento_series(base_url)
    assert figures["evictions"] == 5  # one per memento (keep_last_n_blocks 0)
    assert after["memento_evictions_total"] - before.get("memento_evictions_total", 0) == figures["evictions"]
    assert figures["kv_blocks_freed"] > 0
    assert (
        after["memento_kv_blocks_freed_total"] - before.get("memento_kv_blocks_freed_total", 0)
        == (figures["kv_blocks_freed"])
    )
    assert after["memento_evicted_kv_tokens_total"] > before.get("memento_evicted_kv_tokens_total", 0)
    assert after["memento_requests_finished_total"] - before.get("memento_requests_finished_total", 0) == 1
    total = response.usage.prompt_tokens + response.usage.completion_tokens
    assert figures["peak_kv_tokens"] < figures["peak_unmasked_kv_tokens"] <= total
    assert {"memento_kv_tokens_held", "memento_kv_tokens_unmasked"} <= set(after)


def test_quiet_start_uses_the_current_entry_point(server, log_directory):
    """The server started through vLLM's current entry point (no deprecation notice) and, without --verbose,
    printed one progress line and none of vLLM's information lines."""
    log = (log_directory / "server.log").read_text()
    assert "memento serve: starting vLLM (memento attention)" in log
    assert "deprecated" not in log.lower() and " INFO " not in log, log[-2000:]


def test_prompted_defaults_fit_a_small_context(server, tmp_path):
    """`memento prompted` with its default budgets (1,280 tokens a round) against a 1,024-token server: each
    call's max_tokens is fitted to the room the prompt leaves (before: HTTP 400 on every call)."""
    base_url = str(server.base_url).rstrip("/")
    model = server.models.list().data[0].id
    command = [sys.executable, "-m", "memento.cli", "prompted", "--base-url", base_url, "--model", model]
    command += ["--prompt", "What is 17 * 23?", "--max-rounds", "1", "--max-retries", "0", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rounds"] == 1 and result["peak_context_tokens"] <= 1024, result


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


GOOD_CONFIGS = [  # None: the server's default
    None,
    '{"enable": true, "keep_last_n_blocks": 0, "mask_delimiters": true, "max_block_tokens": 16}',
    '{"enable": true, "keep_last_n_blocks": 0, "mask_delimiters": false, "restart_mode": true}',
]
BAD_CONFIGS = [  # (vllm_xargs value, what the 400 must name)
    ('{"enable": true, "keep_last_n_blocks": 0,', "not valid JSON"),
    ('{"enable": true, "keep_last_n": 0, "mask_delimiters": false}', "keep_last_n"),
    ('{"enable": true, "keep_last_n_blocks": -7, "mask_delimiters": false}', "keep_last_n_blocks"),
    ('{"enable": true, "keep_last_n_blocks": "zero", "mask_delimiters": false}', "keep_last_n_blocks"),
    (5, "JSON object"),
    ('{"enable": true, "keep_last_n_blocks": 1, "mask_delimiters": false, "restart_mode": true}', "restart_mode"),
]
CONCURRENT_TOKENS = 100


def _chat_prompt(problem: str) -> str:
    return f"<|im_start|>user\n{problem}<|im_end|>\n<|im_start|>assistant\n"


def _send(client: OpenAI, model: str, problem: str, config: str | int | None) -> tuple[int, str]:
    """(HTTP status, generated text or the error body as JSON)."""
    extra: dict = {"skip_special_tokens": False}
    if config is not None:
        extra["vllm_xargs"] = {"block_masking_config": config}
    try:
        response = client.completions.create(
            model=model, prompt=_chat_prompt(problem), max_tokens=CONCURRENT_TOKENS, temperature=0, extra_body=extra
        )
    except APIStatusError as error:
        return error.status_code, json.dumps(error.body)
    return 200, response.choices[0].text


def test_bad_configs_get_400_while_concurrent_good_requests_are_served(server):
    """200 concurrent requests, one in two with an unusable block_masking_config: each bad one gets a 400 that
    names the field and the reason (checked before the engine sees it), each good one its exact tokens, and the
    server stays up."""
    model = server.models.list().data[0].id
    problems = [trace.prompt for _, trace in ToyTask().examples(4, seed=5)]
    hf_model, tokenizer = load_model_and_tokenizer(CHECKPOINT, dtype="float32", device="cpu")
    references = {}
    for config in GOOD_CONFIGS:
        memento = MementoConfig.from_json(config or SERVER_CONFIG)
        results = MementoGenerator(hf_model, tokenizer, memento).generate(problems, max_new_tokens=CONCURRENT_TOKENS)
        assert all(result.evictions for result in results)  # the masking shapes every reference
        references.update({(problem, config): r.text for problem, r in zip(problems, results, strict=True)})
    jobs = []
    for index in range(200):
        if index % 2:
            jobs.append((problems[index % 4], *BAD_CONFIGS[(index // 2) % len(BAD_CONFIGS)]))
        else:
            jobs.append((problems[(index // 2) % 4], GOOD_CONFIGS[(index // 8) % len(GOOD_CONFIGS)], None))
    with ThreadPoolExecutor(max_workers=48) as pool:
        answers = list(pool.map(lambda job: _send(server, model, job[0], job[1]), jobs))
    for (problem, config, expected), (status, body) in zip(jobs, answers, strict=True):
        if expected is None:
            assert status == 200, body
            assert body == references[(problem, config)], (config, body)
        else:
            assert status == 400, (config, status, body)
            error = json.loads(body)
            error = error.get("error", error)
            assert error["param"].startswith("vllm_xargs.block_masking_config"), error
            assert "vllm_xargs.block_masking_config" in error["message"] and expected in error["message"], error
    assert _send(server, model, problems[0], None) == (200, references[(problems[0], None)])
    health = httpx.get(str(server.base_url).removesuffix("/v1/") + "/health", timeout=10)
    assert health.status_code == 200


def test_a_streamed_request_with_a_bad_config_gets_the_same_400_before_any_stream(server):
    """Without the check before the stream, a streamed request with a bad config got HTTP 200 and then an error
    event inside the stream; now it is refused as the same request unstreamed is, and good streams still stream."""
    model = server.models.list().data[0].id
    for config, expected in BAD_CONFIGS[:5]:
        extra = {"skip_special_tokens": False, "vllm_xargs": {"block_masking_config": config}}
        refusals = []
        for stream in (False, True):
            with pytest.raises(APIStatusError) as caught:
                answer = server.completions.create(
                    model=model, prompt=_chat_prompt(PROBLEM), max_tokens=8, stream=stream, extra_body=extra
                )
                list(answer) if stream else None  # a stream that opened: its error event raises here
            refusals.append((caught.value.status_code, caught.value.body))
        assert refusals[0] == refusals[1] and refusals[1][0] == 400, (config, refusals)
        error = refusals[1][1].get("error", refusals[1][1])
        assert error["param"].startswith("vllm_xargs.block_masking_config") and expected in error["message"], error
        with pytest.raises(APIStatusError) as caught:
            server.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": PROBLEM}],
                max_tokens=8,
                stream=True,
                extra_body=extra,
            )
        assert caught.value.status_code == 400
    capped = '{"enable": true, "keep_last_n_blocks": 0, "mask_delimiters": false, "max_block_tokens": 16}'
    extra = {"skip_special_tokens": False, "vllm_xargs": {"block_masking_config": capped}}
    whole = server.completions.create(
        model=model, prompt=_chat_prompt(PROBLEM), max_tokens=60, temperature=0, extra_body=extra
    )
    pieces = server.completions.create(
        model=model, prompt=_chat_prompt(PROBLEM), max_tokens=60, temperature=0, extra_body=extra, stream=True
    )
    assert "".join(chunk.choices[0].text for chunk in pieces if chunk.choices) == whole.choices[0].text

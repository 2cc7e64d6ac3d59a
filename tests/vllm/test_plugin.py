"""memento on vLLM (CPU, fp32, greedy): exact against MementoGenerator, KV blocks given back to the pool.

One engine with the plugin serves every configuration (per-request ``block_masking_config``);
plain vLLM runs once to show that masking changes the tokens.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.inference import MementoGenerator
from memento.inference.loading import load_model_and_tokenizer
from memento.toy.task import ToyTask
from memento.toy.train import CHECKPOINT

RUNNER = Path(__file__).with_name("run_engine.py")
NUM_BLOCKS = 40  # x 32 tokens: four requests of ~470 tokens need ~60 blocks without eviction
MAX_TOKENS = 420
CONFIGS = [
    {"keep_last_n_blocks": 0, "mask_delimiters": False},
    {"keep_last_n_blocks": 0, "mask_delimiters": True},
    {"keep_last_n_blocks": 1, "mask_delimiters": False},
    {"keep_last_n_blocks": 1, "mask_delimiters": True},
    {"keep_last_n_blocks": 0, "mask_delimiters": False, "max_block_tokens": 20},
]


def _run_engine(engine_config: dict | None, jobs: list[dict]) -> list[dict]:
    spec = {"model": str(CHECKPOINT), "engine_config": engine_config, "num_blocks": NUM_BLOCKS, "jobs": jobs}
    process = subprocess.run(
        [sys.executable, str(RUNNER)], input=json.dumps(spec), capture_output=True, text=True, timeout=600
    )
    lines = [line for line in process.stdout.splitlines() if line.startswith("MEMENTO-RESULTS ")]
    assert process.returncode == 0 and lines, process.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("MEMENTO-RESULTS "))


@pytest.fixture(scope="module")
def toy():
    model, tokenizer = load_model_and_tokenizer(CHECKPOINT, dtype="float32", device="cpu")
    prompts = [trace.prompt for _, trace in ToyTask().examples(4, seed=11)]
    prompt_ids = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True)
        for p in prompts
    ]
    prompt_ids = [list(ids["input_ids"]) if hasattr(ids, "keys") else list(ids) for ids in prompt_ids]
    return model, tokenizer, prompt_ids


@pytest.fixture(scope="module")
def vllm_runs(toy):
    _, _, prompt_ids = toy
    jobs = [{"prompt_ids": prompt_ids, "config": config, "max_tokens": MAX_TOKENS} for config in CONFIGS]
    with_plugin = _run_engine({"enable": False}, jobs)  # engine default off; each job sets its own config
    plain = _run_engine(None, [{"prompt_ids": prompt_ids, "config": None, "max_tokens": MAX_TOKENS}])[0]
    return dict(zip(map(json.dumps, CONFIGS), with_plugin, strict=True)), plain


def _reference(toy, config: dict) -> list[list[int]]:
    model, tokenizer, prompt_ids = toy
    generator = MementoGenerator(model, tokenizer, MementoConfig.from_dict(config))
    return [r.token_ids for r in generator.generate(prompt_ids, max_new_tokens=MAX_TOKENS)]


@pytest.mark.parametrize("config", CONFIGS, ids=json.dumps)
def test_plugin_tokens_equal_memento_generator(toy, vllm_runs, config):
    runs, _ = vllm_runs
    run = runs[json.dumps(config)]
    assert run["token_ids"] == _reference(toy, config)
    special_ids = SpecialIds.from_tokenizer(toy[1])
    for tokens in run["token_ids"]:
        assert tokens.count(special_ids.summary_end) >= 4  # every request closes >= 4 blocks, so >= 3 evict
    # evicted blocks went back to the pool and were reused: the run fit in a pool too small for it otherwise
    needed = sum(-(-(len(p) + len(t)) // 32) for p, t in zip(toy[2], run["token_ids"], strict=True))
    assert needed > NUM_BLOCKS
    if "max_block_tokens" not in config:  # capped blocks (20 tokens) are shorter than one KV block (32)
        assert run["blocks_released"] >= 3 * len(run["token_ids"]) // (1 + config["keep_last_n_blocks"])
    assert run["peak_blocks_in_use"] <= NUM_BLOCKS


def test_preempted_requests_recompute_with_their_evictions(vllm_runs):
    """With N=1 the pool is tight enough that vLLM preempts; the recompute is still exact (test above)."""
    runs, plain = vllm_runs
    preempted = [config for config in CONFIGS if runs[json.dumps(config)]["preemptions"] > 0]
    assert preempted, "no configuration was preempted: the pool is too large to exercise recompute"
    assert all(runs[json.dumps(c)]["preemptions"] < plain["preemptions"] for c in CONFIGS)


def test_max_block_tokens_caps_every_block(toy, vllm_runs):
    runs, _ = vllm_runs
    special_ids = SpecialIds.from_tokenizer(toy[1])
    for tokens in runs[json.dumps(CONFIGS[-1])]["token_ids"]:
        opened = None
        for position, token in enumerate(tokens):
            if token == special_ids.block_start:
                opened = position
            elif token == special_ids.block_end and opened is not None:
                assert position - opened - 1 <= 20
                opened = None
        assert tokens.count(special_ids.block_end) >= 5


def test_plain_vllm_differs_so_the_test_can_fail(toy, vllm_runs):
    runs, plain = vllm_runs
    assert plain["token_ids"] != runs[json.dumps(CONFIGS[0])]["token_ids"]
    assert plain["preemptions"] > 0  # without eviction the same pool runs out

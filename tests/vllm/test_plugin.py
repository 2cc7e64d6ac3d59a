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
import torch

from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.inference import MementoGenerator
from memento.inference.loading import load_model_and_tokenizer
from memento.toy.task import ToyTask
from memento.toy.train import CHECKPOINT

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
RUNNER = Path(__file__).with_name("run_engine.py")
NUM_BLOCKS = 30  # x 32 tokens: four requests of ~470 tokens need ~60 blocks without eviction, ~36 with N=1
MAX_TOKENS = 420
CONFIGS = [
    {"enable": True, "keep_last_n_blocks": 0, "mask_delimiters": False},
    {"enable": True, "keep_last_n_blocks": 0, "mask_delimiters": True},
    {"enable": True, "keep_last_n_blocks": 1, "mask_delimiters": False},
    {"enable": True, "keep_last_n_blocks": 1, "mask_delimiters": True},
    {"enable": True, "keep_last_n_blocks": 0, "mask_delimiters": False, "max_block_tokens": 20},
    {"enable": True, "keep_last_n_blocks": 0, "mask_delimiters": False, "restart_mode": True},
]
RESTART = CONFIGS[-1]
LOGPROB_CONFIGS = [CONFIGS[0], CONFIGS[3], RESTART]  # whole distributions checked at every step


def _run_engine(engine_config: dict | None, jobs: list[dict]) -> list[dict]:
    spec = {"model": str(CHECKPOINT), "engine_config": engine_config, "num_blocks": NUM_BLOCKS, "jobs": jobs}
    spec["max_model_len"] = 900  # the pool must hold one request of that length
    process = subprocess.run(
        [sys.executable, str(RUNNER)], input=json.dumps(spec), capture_output=True, text=True, timeout=1800
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
def continuations(toy):
    """Prompts that already hold two finished blocks and part of a third (a trace being continued)."""
    _, tokenizer, prompt_ids = toy
    summary_end = SpecialIds.from_tokenizer(tokenizer).summary_end
    prompts = []
    for prompt, tokens in zip(prompt_ids, _reference(toy, CONFIGS[0]), strict=True):
        second_end = [i for i, token in enumerate(tokens) if token == summary_end][1]
        prompts.append(prompt + tokens[: second_end + 9])
    return prompts


@pytest.fixture(scope="module")
def vllm_runs(toy, continuations):
    _, _, prompt_ids = toy
    jobs = [
        {
            "prompt_ids": prompt_ids,
            "config": config,
            "max_tokens": MAX_TOKENS,
            "logprobs": -1 if config in LOGPROB_CONFIGS else None,
        }
        for config in CONFIGS
    ]
    jobs.append({"prompt_ids": continuations, "config": CONFIGS[1], "max_tokens": 200, "prompt_logprobs": -1})
    *with_plugin, continued = _run_engine({"enable": False}, jobs)  # engine default off; each job sets its own
    plain = _run_engine(None, [{"prompt_ids": prompt_ids, "config": None, "max_tokens": MAX_TOKENS}])[0]
    return dict(zip(map(json.dumps, CONFIGS), with_plugin, strict=True)), plain, continued


def _reference(toy, config: dict, prompt_ids: list[list[int]] | None = None, max_tokens: int = MAX_TOKENS):
    model, tokenizer, toy_prompts = toy
    generator = MementoGenerator(model, tokenizer, MementoConfig.from_dict(config))
    return [r.token_ids for r in generator.generate(prompt_ids or toy_prompts, max_new_tokens=max_tokens)]


@pytest.mark.parametrize("config", CONFIGS, ids=json.dumps)
def test_plugin_tokens_equal_memento_generator(toy, vllm_runs, config):
    runs, _, _ = vllm_runs
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


def _log_distributions(positions: list[dict], shape: tuple[int, int]) -> torch.Tensor:
    """vLLM's per-position {token: logprob} (whole vocabulary) as a [positions, vocab] tensor."""
    result = torch.full(shape, float("nan"))
    for row, position in enumerate(positions):
        for token, logprob in position.items():
            result[row, int(token)] = logprob
    return result


@pytest.mark.parametrize("config", LOGPROB_CONFIGS, ids=json.dumps)
def test_plugin_log_probabilities_equal_the_reference_at_every_step(toy, vllm_runs, config):
    """Not only the argmax: the whole next-token distribution of every decode step, preempted runs included."""
    model, tokenizer, prompt_ids = toy
    runs, _, _ = vllm_runs
    run = runs[json.dumps(config)]
    assert run["preemptions"] > 0 or config["keep_last_n_blocks"] == 0  # N=1 runs are recomputed after preemption
    generator = MementoGenerator(model, tokenizer, MementoConfig.from_dict(config))
    for prompt, tokens, positions in zip(prompt_ids, run["token_ids"], run["logprobs"], strict=True):
        logits = generator.score(prompt + tokens, chunk_size=16)[len(prompt) - 1 : -1]
        expected = torch.log_softmax(logits.float(), dim=-1)
        got = _log_distributions(positions, tuple(expected.shape))
        assert torch.allclose(got, expected, atol=1e-3), (got - expected).abs().max()


def test_preempted_requests_recompute_with_their_evictions(vllm_runs):
    """With N=1 the pool is tight enough that vLLM preempts; the recompute is still exact (test above)."""
    runs, plain, _ = vllm_runs
    preempted = [config for config in CONFIGS if runs[json.dumps(config)]["preemptions"] > 0]
    assert preempted, "no configuration was preempted: the pool is too large to exercise recompute"
    assert all(runs[json.dumps(c)]["preemptions"] < plain["preemptions"] for c in CONFIGS)


def test_max_block_tokens_caps_every_block(toy, vllm_runs):
    runs, _, _ = vllm_runs
    special_ids = SpecialIds.from_tokenizer(toy[1])
    for tokens in runs[json.dumps(CONFIGS[4])]["token_ids"]:
        opened = None
        for position, token in enumerate(tokens):
            if token == special_ids.block_start:
                opened = position
            elif token == special_ids.block_end and opened is not None:
                assert position - opened - 1 <= 20
                opened = None
        assert tokens.count(special_ids.block_end) >= 5


def test_plain_vllm_differs_so_the_test_can_fail(toy, vllm_runs):
    runs, plain, _ = vllm_runs
    assert plain["token_ids"] != runs[json.dumps(CONFIGS[0])]["token_ids"]
    assert plain["preemptions"] > 0  # without eviction the same pool runs out


def test_prompts_holding_finished_blocks_are_prefilled_exactly(toy, vllm_runs, continuations):
    """The prompt's own blocks are evicted during its prefill (chunks end after each closing token):
    every prompt token's log-probability equals the HF reference's, and the tokens that follow too."""
    model, tokenizer, _ = toy
    _, _, continued = vllm_runs
    assert continued["token_ids"] == _reference(toy, CONFIGS[1], continuations, max_tokens=200)
    assert continued["blocks_released"] > 0
    generator = MementoGenerator(model, tokenizer, MementoConfig.from_dict(CONFIGS[1]))
    for prompt, positions in zip(continuations, continued["prompt_logprobs"], strict=True):
        ids = torch.tensor(prompt)
        expected = torch.log_softmax(generator.score(ids, chunk_size=16).float(), dim=-1)[:-1]  # [L - 1, vocab]
        got = _log_distributions(positions, tuple(expected.shape))
        with torch.no_grad():  # unmasked attention: what a prefill that ignored the prompt's blocks computes
            plain = torch.log_softmax(model(ids[None]).logits[0].float(), dim=-1)[:-1]
        assert (plain - expected).abs().max() > 0.5  # the prompt's blocks matter, so the test can fail
        assert torch.allclose(got, expected, atol=1e-3), (got - expected).abs().max()


def test_sliding_window_models_are_refused_at_start_up(tmp_path):
    """A window over the packed cache would not be the logical window: refused with a clear error."""
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    from memento.toy.train import toy_config

    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT)
    config = toy_config(len(tokenizer))  # the toy model's shape with every layer windowed
    config.use_sliding_window, config.sliding_window = True, 64
    config.layer_types = ["sliding_attention"] * config.num_hidden_layers
    Qwen3ForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    spec = {"model": str(tmp_path), "engine_config": CONFIGS[0], "num_blocks": 64, "jobs": []}
    process = subprocess.run(
        [sys.executable, str(RUNNER)], input=json.dumps(spec), capture_output=True, text=True, timeout=1800
    )
    assert process.returncode != 0
    assert "memento's vLLM backend supports full-attention layers only" in process.stderr, process.stderr[-3000:]


def test_restart_mode_recomputes_every_memento_without_its_block(toy, vllm_runs):
    """Each closed memento is computed a second time with its block gone (the authors' restart_mode): the tokens
    equal MementoGenerator's in restart_mode (test above) and differ from the default's, which keeps each
    memento's KV as computed with its block visible."""
    runs, _, _ = vllm_runs
    special_ids = SpecialIds.from_tokenizer(toy[1])
    restarted = runs[json.dumps(RESTART)]
    mementos = sum(tokens.count(special_ids.summary_end) for tokens in restarted["token_ids"])
    assert restarted["restarts"] >= mementos > 0  # more after a preemption: the recompute restarts again
    assert restarted["token_ids"] != runs[json.dumps(CONFIGS[0])]["token_ids"]

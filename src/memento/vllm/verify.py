"""`memento verify`: is memento attention exact on this machine's vLLM build, attention backend, dtype, graph mode?

Runs memento-format sequences whose prompts hold finished blocks (so their spans are evicted during
prefill, the packed cache moved and blocks given back) through vLLM with the plugin: the prompt's
teacher-forced log-probs, then greedy decoding. The same tokens go through the HF reference
(`MementoGenerator.score`, the evicting cache on the one attention rule). It passes when every
log-prob agrees within the dtype's tolerance, greedy tokens equal the reference's argmax (fp32),
spans were evicted and vLLM got blocks back. The model is either a small random one with the
given checkpoint's attention geometry (layers cut to 2; same heads, head size, GQA, RoPE, vocab)
or the checkpoint itself.

vLLM runs in this process (engine core in-process): call `run_verify` before anything else in the
process starts vLLM.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from memento.config import MementoConfig
from memento.vllm.checks import installed_vllm_version

TOLERANCES = {"float32": 2e-3, "float16": 5e-2, "bfloat16": 1e-1}
"""Largest |log p(vLLM) - log p(reference)| accepted, per dtype (fp32: kernels differ only in summation order)."""

CONFIGS = (
    MementoConfig(mask_delimiters=False),
    MementoConfig(mask_delimiters=True),
)


@dataclass
class VerifyOptions:
    """What to verify. weights: "random" (2 layers, the checkpoint's attention geometry) or "checkpoint"."""

    model: Path
    weights: str = "random"
    attention_backend: str | None = None
    dtype: str = "float32"
    block_size: int | None = None  # None: 16 on GPU, 32 on CPU (vLLM's CPU backend needs a multiple of 32)
    enforce_eager: bool | None = None  # None: eager on CPU, vLLM's default graph mode on GPU
    sequences: int = 4
    max_tokens: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        if self.dtype not in TOLERANCES:
            raise ValueError(f"--dtype must be one of {', '.join(TOLERANCES)}, got {self.dtype!r}")
        if self.weights not in ("random", "checkpoint"):
            raise ValueError(f"--weights must be random or checkpoint, got {self.weights!r}")
        if self.sequences < 1 or self.max_tokens < 1:
            raise ValueError("--sequences and --max-tokens must be at least 1")
        if self.block_size is not None and self.block_size < 1:
            raise ValueError(f"--block-size must be positive, got {self.block_size}")


@dataclass
class VerifyResult:
    """The verdict (`passed`) and what it rests on; `to_json` is the public one-line report."""

    passed: bool
    backend: str
    attention_backend: str
    dtype: str
    max_abs_logprob_diff: float
    tolerance: float
    tokens_equal: bool
    evictions: int
    blocks_released: int
    device: str
    vllm: str
    enforce_eager: bool
    weights: str
    worst: str  # where the largest difference is

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def random_model(model: Path, directory: Path, seed: int) -> Path:
    """A seeded random model with `model`'s attention geometry (2 layers) and its tokenizer, saved to `directory`."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(model)
    text = getattr(config, "text_config", None) or config
    layers = min(2, text.num_hidden_layers)
    text.num_hidden_layers = layers
    if getattr(text, "layer_types", None):
        text.layer_types = list(text.layer_types[:layers])
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(directory)
    AutoTokenizer.from_pretrained(model).save_pretrained(directory)
    return directory


def memento_prompts(tokenizer: Any, count: int, seed: int) -> list[list[int]]:
    """Chat prompts whose assistant turn holds three finished blocks (40-100 tokens, mementos 4-12) and an open one."""
    from memento.special_ids import SpecialIds

    ids = SpecialIds.from_tokenizer(tokenizer)
    special = {*tokenizer.all_special_ids, *ids.memento_ids, ids.think_start, ids.think_end, ids.im_start, ids.im_end}
    text_ids = [token for token in range(len(tokenizer)) if token not in special]
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        header = tokenizer.apply_chat_template(
            [{"role": "user", "content": "verify"}], add_generation_prompt=True, tokenize=True
        )
        header = list(header["input_ids"] if hasattr(header, "keys") else header)
        sequence = [*header, *([ids.think_start] if ids.think_start is not None else [])]
        for _ in range(3):
            sequence += [ids.block_start, *rng.choices(text_ids, k=rng.randint(40, 100)), ids.block_end]
            sequence += [ids.summary_start, *rng.choices(text_ids, k=rng.randint(4, 12)), ids.summary_end]
        prompts.append([*sequence, ids.block_start, *rng.choices(text_ids, k=rng.randint(5, 15))])
    return prompts


def _evictions(tokenizer: Any, config: MementoConfig, sequence: list[int]) -> int:
    from memento.attention import BlockTracker
    from memento.special_ids import SpecialIds

    tracker = BlockTracker(SpecialIds.from_tokenizer(tokenizer, config), config)
    return sum(len(tracker.feed(token).evicted) for token in sequence)


def run_verify(options: VerifyOptions) -> VerifyResult:
    """Run the check (loads vLLM in this process) and return its verdict."""
    import os

    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine core in this process: its scheduler's counters
    from transformers import AutoTokenizer

    cuda = torch.cuda.is_available()
    block_size = options.block_size or (16 if cuda else 32)
    eager = (not cuda) if options.enforce_eager is None else options.enforce_eager
    with tempfile.TemporaryDirectory(prefix="memento-verify-") as scratch:
        model = options.model
        if options.weights == "random":
            model = random_model(options.model, Path(scratch), options.seed)
        tokenizer = AutoTokenizer.from_pretrained(model)
        prompts = memento_prompts(tokenizer, options.sequences, options.seed)
        runs, released, backend = _run_vllm(model, options, prompts, block_size, eager)
        result = _compare(model, options, tokenizer, prompts, runs, "cuda" if cuda else "cpu")
    difference, worst, tokens_equal, evictions = result
    tolerance = TOLERANCES[options.dtype]
    passed = difference <= tolerance and (tokens_equal or options.dtype != "float32") and evictions > 0 and released > 0
    return VerifyResult(
        passed=passed,
        backend="vllm",
        attention_backend=backend,
        dtype=options.dtype,
        max_abs_logprob_diff=difference,
        tolerance=tolerance,
        tokens_equal=tokens_equal,
        evictions=evictions,
        blocks_released=released,
        device=torch.cuda.get_device_name() if cuda else "cpu",
        vllm=installed_vllm_version() or "?",
        enforce_eager=eager,
        weights=options.weights,
        worst=worst,
    )


def _run_vllm(
    model: Path, options: VerifyOptions, prompts: list[list[int]], block_size: int, eager: bool
) -> tuple[list[list[tuple[list[int], list[float]]]], int, str]:
    """Per config, per prompt: (generated tokens, log-probs of every token after the first); blocks given back;
    the attention backend."""
    from memento.vllm.engine import offline_llm

    longest = max(map(len, prompts)) + options.max_tokens
    arguments: dict[str, Any] = {}
    if options.attention_backend is not None:
        arguments["attention_backend"] = options.attention_backend
    llm = offline_llm(
        model,
        MementoConfig(enable=False),  # the plugin on; each request names its config
        dtype=options.dtype,
        enforce_eager=eager,
        block_size=block_size,
        num_gpu_blocks_override=len(CONFIGS) * len(prompts) * -(-longest // block_size) + 8,
        max_model_len=-(-longest // 64) * 64,
        max_num_seqs=len(CONFIGS) * len(prompts),
        gpu_memory_utilization=0.2 if not torch.cuda.is_available() else 0.4,
        seed=options.seed,
        **arguments,
    )
    from memento.vllm.backends import attention_backends
    from memento.vllm.runtime import WORKER
    from vllm import SamplingParams

    scheduler = llm.llm_engine.engine_core.engine_core.scheduler
    requests, params = [], []
    for config in CONFIGS:
        for prompt in prompts:
            requests.append({"prompt_token_ids": prompt})
            params.append(
                SamplingParams(
                    temperature=0,
                    max_tokens=options.max_tokens,
                    ignore_eos=True,
                    skip_special_tokens=False,
                    prompt_logprobs=0,
                    logprobs=0,
                    extra_args={"block_masking_config": config.to_dict()},
                )
            )
    outputs = llm.generate(requests, params, use_tqdm=False)
    backend = ",".join(attention_backends(WORKER.runner)) if WORKER.runner is not None else "?"
    runs = []
    for index, output in enumerate(outputs):
        prompt, generated = requests[index]["prompt_token_ids"], list(output.outputs[0].token_ids)
        logprobs = [
            position[token].logprob for position, token in zip(output.prompt_logprobs[1:], prompt[1:], strict=True)
        ]
        logprobs += [step[token].logprob for step, token in zip(output.outputs[0].logprobs, generated, strict=True)]
        runs.append((generated, logprobs))
    released = scheduler.memento_blocks_released
    llm.llm_engine.engine_core.shutdown()
    per_config = [runs[i * len(prompts) : (i + 1) * len(prompts)] for i in range(len(CONFIGS))]
    return per_config, released, backend


def _compare(
    model: Path,
    options: VerifyOptions,
    tokenizer: Any,
    prompts: list[list[int]],
    runs: list[list[tuple[list[int], list[float]]]],
    device: str,
) -> tuple[float, str, bool, int]:
    """(largest |difference|, where, greedy tokens equal the reference's argmax, spans evicted)."""
    from memento.inference import MementoGenerator
    from memento.inference.loading import load_model_and_tokenizer

    reference, _ = load_model_and_tokenizer(model, dtype=options.dtype, device=device)
    largest, worst, tokens_equal, evictions = 0.0, "", True, 0
    for config, config_runs in zip(CONFIGS, runs, strict=True):
        generator = MementoGenerator(reference, tokenizer, config)
        for number, (prompt, (generated, logprobs)) in enumerate(zip(prompts, config_runs, strict=True)):
            sequence = prompt + generated
            with torch.no_grad():
                expected = torch.log_softmax(generator.score(sequence, chunk_size=16).float(), dim=-1)
            targets = torch.tensor(sequence[1:])
            wanted = expected[:-1].gather(1, targets[:, None])[:, 0]
            got, wanted = torch.tensor(logprobs, dtype=torch.float32), wanted.cpu().float()
            # -inf on both sides agrees; any other non-finite difference (a NaN log-prob) is the worst there is
            difference = torch.where(got == wanted, 0.0, (got - wanted).abs().nan_to_num(nan=math.inf))
            position = int(difference.argmax())
            if float(difference[position]) > largest:
                largest = float(difference[position])
                worst = f"mask_delimiters={config.mask_delimiters} sequence {number} position {position + 1}"
            argmax = expected[len(prompt) - 1 : -1].argmax(-1).tolist()
            tokens_equal = tokens_equal and argmax == generated
            evictions += _evictions(tokenizer, config, sequence)
    return largest, worst, tokens_equal, evictions

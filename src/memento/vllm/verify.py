"""`memento verify`: is memento attention exact on this machine's vLLM build, attention backend, dtype, graph mode?

Runs memento-format sequences through vLLM with the plugin: prompts holding finished blocks (spans
evicted during prefill), then greedy decoding in which a scripted memento is closed (a span evicted
mid-decode, in the graph mode vLLM will serve with). The same tokens go through the HF reference
(`MementoGenerator.score`, the evicting cache on the one attention rule; `verify_compare`). It passes
when every log-prob agrees within the dtype's tolerance, greedy tokens equal the reference's argmax
wherever its top-2 margin is clear, spans were evicted in the prompt and while decoding, vLLM got
blocks back, and the negative control (the same requests unmasked, in the same engine) is off by
more than the tolerance: otherwise the check could not have told masked from unmasked attention.

The dtype defaults to the one `memento serve` runs: bfloat16 on CUDA (vLLM picks its bf16 backend,
FLASH_ATTN on Hopper, unless `attention_backend` says otherwise), float32 on CPU (CPU_ATTN). fp32 on
CUDA is checked in IEEE precision: TF32 off in torch and in Triton's `tl.dot` (TRITON_F32_DEFAULT).

vLLM runs in this process (engine core in-process): call `run_verify` before anything else in the
process starts vLLM.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from memento.config import TOKEN_FIELDS, MementoConfig
from memento.vllm.checks import (
    check_attention_backend,
    check_block_size,
    check_engine,
    check_model,
    installed_vllm_version,
)
from memento.vllm.interrupts import interruptible, scratch_directory
from memento.vllm.verify_script import MIN_TOKENS

TOLERANCES = {"float32": 2e-3, "float16": 5e-2, "bfloat16": 1e-1}
"""Largest |log p(vLLM) - log p(reference)| accepted, per dtype (fp32: kernels differ only in summation order)."""

CONFIGS = (
    MementoConfig(mask_delimiters=False),
    MementoConfig(mask_delimiters=True),
)
CONTROL = MementoConfig(enable=False)
"""The negative control's requests: the same prompts and scripts, nothing evicted."""
NOT_CHECKED = (*TOKEN_FIELDS, "max_block_tokens", "debug")
"""A served config's fields verify takes from the defaults: its prompts are written in the default markers, and
the block cap forces a token, it does not change who attends to whom."""


def unverifiable(served: MementoConfig) -> str | None:
    """Why verify cannot check a served config's rule (None when it can)."""
    if served.restart_mode:  # vLLM's request validation refuses prompt log-probs under it (memento.vllm.validation)
        return "restart_mode cannot return prompt log-probs, which verify compares"
    return None


def checked_config(served: MementoConfig) -> MementoConfig:
    """The served config's attention rule as verify runs it (`NOT_CHECKED` fields at their defaults)."""
    defaults = {f.name: f.default for f in fields(MementoConfig)}
    return replace(served, **{name: defaults[name] for name in NOT_CHECKED})


def serving_dtype(cuda: bool) -> str:
    """The dtype `memento serve` runs by default (and so the one worth verifying): bf16 on CUDA, fp32 on CPU."""
    return "bfloat16" if cuda else "float32"


@dataclass
class VerifyOptions:
    """What to verify. weights: "random" (2 layers, the checkpoint's attention geometry) or "checkpoint".

    dtype None: `serving_dtype` of this machine.
    """

    model: Path
    weights: str = "random"
    attention_backend: str | None = None
    dtype: str | None = None
    block_size: int | None = None  # None: 16 on GPU, 32 on CPU (vLLM's CPU backend needs a multiple of 32)
    enforce_eager: bool | None = None  # None: eager on CPU, vLLM's default graph mode on GPU
    sequences: int = 4
    max_tokens: int = 32
    seed: int = 0
    masking: MementoConfig | None = None  # the served config: checked too, beside the built-in CONFIGS

    @property
    def configs(self) -> tuple[MementoConfig, ...]:
        """The masked configs checked: the built-in two, then the served one's rule where it is another."""
        checked = None if self.masking is None else checked_config(self.masking)
        return CONFIGS if checked is None or checked in CONFIGS else (*CONFIGS, checked)

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        if self.dtype is None:
            self.dtype = serving_dtype(torch.cuda.is_available())
        if self.dtype not in TOLERANCES:
            raise ValueError(f"--dtype must be one of {', '.join(TOLERANCES)}, got {self.dtype!r}")
        if self.weights not in ("random", "checkpoint"):
            raise ValueError(f"--weights must be random or checkpoint, got {self.weights!r}")
        if self.sequences < 1:
            raise ValueError("--sequences must be at least 1")
        if self.max_tokens < MIN_TOKENS:
            raise ValueError(
                f"--max-tokens must be at least {MIN_TOKENS} (a memento is closed during decoding), got "
                f"{self.max_tokens}"
            )
        if self.block_size is not None and self.block_size < 1:
            raise ValueError(f"--block-size must be positive, got {self.block_size}")
        if self.masking is not None and not self.masking.enable:
            raise ValueError("--block-masking-config: enable is false, so nothing is masked and nothing to verify")
        reason = None if self.masking is None else unverifiable(self.masking)
        if reason is not None:
            raise ValueError(f"--block-masking-config: {reason}")


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
    decode_evictions: int = 0  # spans closed by a generated token (the scripted memento)
    tokens_compared: int = 0  # greedy tokens judged against the reference's argmax
    tokens_close: int = 0  # greedy tokens not judged: the reference's top-2 margin is within 2 tolerances
    control_max_abs_logprob_diff: float = 0.0  # the unmasked run's, least over the built-in configs
    can_tell: bool = False  # the control is off by more than the tolerance
    masking_configs: list[dict[str, Any]] = field(default_factory=list)  # the masked configs checked

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def check_verify_start(options: VerifyOptions, cuda: bool | None = None) -> None:
    """Everything refused before a model is built or vLLM starts (serve's checks): raises `StartupError`."""
    cuda = torch.cuda.is_available() if cuda is None else cuda
    check_engine()
    if options.attention_backend is not None:
        check_attention_backend(options.attention_backend, cuda)
    if options.block_size is not None:
        check_block_size(options.block_size, cuda)
    check_model(options.model, CONFIGS[0])  # the markers the configs share


def precision_environment(dtype: str, cuda: bool, environ: dict[str, str] | None = None) -> dict[str, str]:
    """fp32 on CUDA in IEEE precision: Triton's fp32 `tl.dot` (TRITON_ATTN) would otherwise use TF32."""
    environ = os.environ if environ is None else environ  # type: ignore[assignment]
    if dtype == "float32" and cuda:
        environ["TRITON_F32_DEFAULT"] = "ieee"
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
    return environ  # type: ignore[return-value]


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


def _text_ids(tokenizer: Any, ids: Any) -> list[int]:
    special = {*tokenizer.all_special_ids, *ids.memento_ids, ids.think_start, ids.think_end, ids.im_start, ids.im_end}
    return [token for token in range(len(tokenizer)) if token not in special]


def memento_prompts(tokenizer: Any, count: int, seed: int) -> list[list[int]]:
    """Chat prompts whose assistant turn holds three finished blocks (40-100 tokens, mementos 4-12) and an open one."""
    from memento.special_ids import SpecialIds

    ids = SpecialIds.from_tokenizer(tokenizer)
    text_ids = _text_ids(tokenizer, ids)
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


def decode_scripts(tokenizer: Any, count: int, seed: int) -> list[list[int]]:
    """Per prompt, the tokens forced at the start of decoding: a memento closing the prompt's open block."""
    from memento.special_ids import SpecialIds
    from memento.vllm.verify_script import decode_script

    ids = SpecialIds.from_tokenizer(tokenizer)
    rng = random.Random(seed + 1)
    return [decode_script(ids, _text_ids(tokenizer, ids), rng) for _ in range(count)]


def verdict(
    difference: float, control: float, tolerance: float, tokens_equal: bool, evictions: int, decode: int, released: int
) -> tuple[bool, bool]:
    """(passed, can_tell): the control must exceed the tolerance, or agreement proves nothing."""
    can_tell = control > tolerance
    passed = can_tell and difference <= tolerance and tokens_equal and evictions > 0 and decode > 0 and released > 0
    return passed, can_tell


def run_verify(options: VerifyOptions, progress: Callable[[str], None] | None = None) -> VerifyResult:
    """Run the check (loads vLLM in this process) and return its verdict; `progress` gets one line per stage.

    Raises `StartupError` (a ValueError, one line) for a configuration refused before anything is loaded,
    and `Interrupted` on SIGINT/SIGTERM (the temporary model copy is removed either way).
    """
    say = progress or (lambda line: None)
    cuda = torch.cuda.is_available()
    check_verify_start(options, cuda)
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine core in this process: its scheduler's counters
    precision_environment(options.dtype, cuda)
    from transformers import AutoTokenizer

    from memento.inference.loading import load_model_and_tokenizer
    from memento.vllm.verify_compare import compare

    block_size = options.block_size or (16 if cuda else 32)
    eager = (not cuda) if options.enforce_eager is None else options.enforce_eager
    tolerance = TOLERANCES[options.dtype]
    with interruptible() as signals, scratch_directory(signals) as scratch:
        model = options.model
        if options.weights == "random":
            say("building a random model with the checkpoint's attention geometry")
            model = random_model(options.model, scratch, options.seed)
        tokenizer = AutoTokenizer.from_pretrained(model)
        prompts = memento_prompts(tokenizer, options.sequences, options.seed)
        scripts = decode_scripts(tokenizer, options.sequences, options.seed)
        say(f"running vLLM ({options.dtype}, {'eager' if eager else 'graphs'}, block size {block_size})")
        runs, released, backend = _run_vllm(model, options, prompts, scripts, block_size, eager)
        say(f"scoring with the HF reference on {'cuda' if cuda else 'cpu'}")
        reference, _ = load_model_and_tokenizer(model, dtype=options.dtype, device="cuda" if cuda else "cpu")
        agreement, control = compare(reference, tokenizer, options.configs, prompts, scripts, runs, tolerance)
    # the built-in configs evict in every prompt, so their controls say whether the check can tell; a served
    # config keeping more blocks than the prompts hold evicts nothing, and its runs are judged for agreement only
    control = control[: len(CONFIGS)]
    passed, can_tell = verdict(
        agreement.largest,
        min(control),
        tolerance,
        agreement.tokens_equal,
        agreement.evictions,
        agreement.decode_evictions,
        released,
    )
    return VerifyResult(
        passed=passed,
        backend="vllm",
        attention_backend=backend,
        dtype=options.dtype,
        max_abs_logprob_diff=agreement.largest,
        tolerance=tolerance,
        tokens_equal=agreement.tokens_equal,
        evictions=agreement.evictions,
        blocks_released=released,
        device=torch.cuda.get_device_name() if cuda else "cpu",
        vllm=installed_vllm_version() or "?",
        enforce_eager=eager,
        weights=options.weights,
        worst=agreement.worst,
        decode_evictions=agreement.decode_evictions,
        tokens_compared=agreement.tokens_compared,
        tokens_close=agreement.tokens_close,
        control_max_abs_logprob_diff=min(control),
        can_tell=can_tell,
        masking_configs=[config.to_dict() for config in options.configs],
    )


def _run_vllm(
    model: Path,
    options: VerifyOptions,
    prompts: list[list[int]],
    scripts: list[list[int]],
    block_size: int,
    eager: bool,
) -> tuple[list[list[tuple[list[int], list[float]]]], int, str]:
    """Per config, then the control: per prompt (generated tokens, log-probs of every token after the first);
    blocks given back; the attention backend."""
    from memento.vllm.engine import offline_llm
    from memento.vllm.verify_script import PROCESSOR, SCRIPT_KEY

    groups = (*options.configs, CONTROL)
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
        num_gpu_blocks_override=len(groups) * len(prompts) * -(-longest // block_size) + 8,
        max_model_len=-(-longest // 64) * 64,
        max_num_seqs=len(groups) * len(prompts),
        gpu_memory_utilization=0.2 if not torch.cuda.is_available() else 0.4,
        seed=options.seed,
        logits_processors=[PROCESSOR],
        **arguments,
    )
    try:
        from memento.vllm.backends import attention_backends
        from memento.vllm.runtime import WORKER
        from vllm import SamplingParams

        scheduler = llm.llm_engine.engine_core.engine_core.scheduler
        requests, params = [], []
        for config in groups:
            for prompt, script in zip(prompts, scripts, strict=True):
                requests.append({"prompt_token_ids": prompt})
                params.append(
                    SamplingParams(
                        temperature=0,
                        max_tokens=options.max_tokens,
                        ignore_eos=True,
                        skip_special_tokens=False,
                        prompt_logprobs=0,
                        logprobs=0,
                        extra_args={"block_masking_config": config.to_dict(), SCRIPT_KEY: script},
                    )
                )
        outputs = llm.generate(requests, params, use_tqdm=False)
        backend = ",".join(attention_backends(WORKER.runner)) if WORKER.runner is not None else "?"
        released = scheduler.memento_blocks_released
    finally:
        llm.llm_engine.engine_core.shutdown()
    runs = []
    for request, output in zip(requests, outputs, strict=True):
        prompt, generated = request["prompt_token_ids"], list(output.outputs[0].token_ids)
        logprobs = [
            position[token].logprob for position, token in zip(output.prompt_logprobs[1:], prompt[1:], strict=True)
        ]
        logprobs += [step[token].logprob for step, token in zip(output.outputs[0].logprobs, generated, strict=True)]
        runs.append((generated, logprobs))
    per_group = [runs[i * len(prompts) : (i + 1) * len(prompts)] for i in range(len(groups))]
    return per_group, released, backend

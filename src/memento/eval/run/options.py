"""`EvalOptions` (`memento eval`) and `GradeOptions` (`memento eval grade`), validated; the CLI is
generated from the fields' help."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from memento.eval.run.modes import BUILTIN_MODES, PROMPTED_MODES, prompted_modes
from memento.inference.sampling import SamplingOptions
from memento.openai_client import check_base_url

BACKENDS = ("hf", "vllm", "openai", "prompted")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEFAULT_MODES = "memento,no_eviction,restart"
DEFAULT_PROMPTED_MODES = ",".join(PROMPTED_MODES)


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass
class EvalOptions:
    """A run of `memento eval`: which model and benchmark, which modes, how to sample, where to write."""

    # model and benchmark are required (checked below); they default to None only so that
    # `memento eval grade` can share the `memento eval` parser
    model: str | None = field(
        default=None, metadata=_help("local checkpoint directory (hf, vllm), or the served model name (openai)")
    )
    benchmark: str | None = field(
        default=None,
        metadata=_help(
            "aime24, aime25, math500, gsm8k, gpqa-diamond, livecodebench, humaneval, toy, ledger-N (N transfers), "
            "or a local JSONL/JSON/parquet file with problem + answer"
        ),
    )
    modes: str | None = field(
        default=None,
        metadata=_help(
            "comma-separated, from memento, no_eviction, restart (default: all three); "
            "with --backend prompted from prompted, plain (default: both)"
        ),
    )
    config: tuple[str, ...] = field(
        default=(),
        metadata=_help(
            "one more mode (repeatable): a memento config as JSON or a .json file, or NAME=CONFIG "
            "(the authors' BlockMaskingConfig)"
        ),
    )
    baseline_model: str | None = field(
        default=None, metadata=_help("a base model run with plain generation in the same table (mode 'baseline')")
    )
    samples: int = field(default=1, metadata=_help("samples per problem (the paper: 64 on AIME, 2 elsewhere)"))
    limit: int | None = field(default=None, metadata=_help("only the first M problems of the benchmark"))
    max_new_tokens: int = field(default=32768, metadata=_help("token budget per response"))
    temperature: float = field(default=0.6, metadata=_help("sampling temperature (0 = greedy)"))
    top_p: float = field(default=0.95, metadata=_help("nucleus sampling (1 = off)"))
    top_k: int = field(default=20, metadata=_help("top-k sampling (0 = off)"))
    seed: int = field(default=0, metadata=_help("run seed; each sample's seed derives from it, the problem and index"))
    backend: Literal["hf", "vllm", "openai", "prompted"] = field(
        default="hf",
        metadata=_help(
            "hf (MementoGenerator), vllm (offline engine), openai (server), prompted (memento.prompted's "
            "client-side loop on any chat endpoint)"
        ),
    )
    batch_size: int = field(default=64, metadata=_help("samples generated per call (hf, vllm)"))
    output: str | None = field(
        default=None,
        metadata=_help("output directory (default runs/eval/MODEL-BENCHMARK); re-running resumes it"),
    )
    mask_delimiters: bool | None = field(
        default=None, metadata=_help("the model's mask_delimiters (default: per model family; Phi-4 yes, Qwen3 no)")
    )
    prompt_template: str | None = field(
        default=None, metadata=_help("a text file with {problem} (and {choices}) replacing the built-in template")
    )
    choice_seed: int = field(default=0, metadata=_help("seed of the multiple-choice shuffle"))
    offline: bool = field(default=False, metadata=_help("never load a benchmark from the Hugging Face hub"))
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = field(
        default="auto", metadata=_help("weights dtype (hf, vllm): auto, float32, bfloat16, float16")
    )
    device: str = field(default="auto", metadata=_help("hf device: auto, cpu, cuda, cuda:1, ..."))
    base_url: str = field(
        default="http://127.0.0.1:8000/v1", metadata=_help("OpenAI-compatible endpoint (openai, prompted backends)")
    )
    api_key: str | None = field(default=None, metadata=_help("API key (default: $OPENAI_API_KEY, else 'unused')"))
    baseline_base_url: str | None = field(
        default=None, metadata=_help("endpoint serving the baseline model (openai backend; default: --base-url)")
    )
    concurrency: int = field(
        default=8, metadata=_help("requests in flight (openai backend); samples solved at once (prompted)")
    )
    request_timeout: float = field(default=3600.0, metadata=_help("seconds per request (openai, prompted backends)"))
    vllm_args: str | None = field(
        default=None,
        metadata=_help('extra vllm.LLM arguments as JSON, e.g. \'{"max_model_len": 4096, "block_size": 32}\''),
    )
    tokenizer: str | None = field(
        default=None, metadata=_help("tokenizer for the KV replay when --model is not a local checkpoint (openai)")
    )
    model_config: str | None = field(
        default=None, metadata=_help("checkpoint dir or config.json giving the KV geometry (default: --model)")
    )
    geometry: str | None = field(
        default=None,
        metadata=_help("KV geometry preset instead: qwen3-8b, qwen3-32b, phi-4-reasoning, olmo-3-7b-think"),
    )
    grade_workers: int | None = field(
        default=None, metadata=_help("parallel graders and code sandboxes (default: CPUs)")
    )

    def __post_init__(self) -> None:
        if not self.model or not str(self.model).strip():
            raise ValueError("--model is required (a checkpoint directory, or the served model name)")
        if not self.benchmark or not str(self.benchmark).strip():
            raise ValueError("--benchmark is required (a benchmark name or a local file)")
        self.config = tuple(self.config)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.backend in ("openai", "prompted"):
            check_base_url(self.base_url)
        if self.baseline_base_url is not None:
            check_base_url(self.baseline_base_url, "--baseline-base-url")
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.batch_size < 1 or self.concurrency < 1:
            raise ValueError("batch_size and concurrency must be >= 1")
        if self.request_timeout <= 0:
            raise ValueError(f"request_timeout must be positive, got {self.request_timeout}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.grade_workers is not None and self.grade_workers < 1:
            raise ValueError(f"grade_workers must be >= 1, got {self.grade_workers}")
        if self.model_config is not None and self.geometry is not None:
            raise ValueError("give --model-config or --geometry, not both")
        _ = self.sampling  # validates the sampling fields
        names = self.mode_names
        if self.backend == "prompted":
            self._check_prompted(names)
        elif unknown := [name for name in names if name not in BUILTIN_MODES]:
            raise ValueError(
                f"unknown mode(s) {', '.join(unknown)} in --modes; choose from {', '.join(BUILTIN_MODES)} "
                "(other settings: --config NAME=JSON)"
            )
        if self.vllm_args is not None:
            _ = self.vllm_arguments  # validates the JSON

    def _check_prompted(self, names: list[str]) -> None:
        if self.config or self.baseline_model is not None:
            raise ValueError(
                "--config and --baseline-model are for the hf, vllm and openai backends; "
                f"the prompted backend runs the modes {', '.join(PROMPTED_MODES)}"
            )
        prompted_modes(names)  # validates them

    @property
    def mode_names(self) -> list[str]:
        """The modes asked for, in order (without --modes: all three built-in ones, or for the prompted
        backend prompted and plain)."""
        default = DEFAULT_PROMPTED_MODES if self.backend == "prompted" else DEFAULT_MODES
        text = self.modes if self.modes is not None else default
        names = [name.strip() for name in text.split(",") if name.strip()]
        if not names and not self.config and self.baseline_model is None:
            raise ValueError("--modes is empty and there is no --config or --baseline-model")
        return names

    @property
    def sampling(self) -> SamplingOptions:
        """The decoding options (validated by their owner); seeds are per sample, so `seed` is unset."""
        return SamplingOptions(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            seed=None,
        )

    @property
    def vllm_arguments(self) -> dict[str, Any]:
        if self.vllm_args is None:
            return {}
        try:
            value = json.loads(self.vllm_args)
        except json.JSONDecodeError as error:
            raise ValueError(f"--vllm-args is not valid JSON (column {error.colno}): {error.msg}") from None
        if not isinstance(value, dict):
            raise ValueError("--vllm-args must be a JSON object of vllm.LLM keyword arguments")
        return value

    def to_dict(self) -> dict[str, Any]:
        """Every option (the API key left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}


@dataclass
class GradeOptions:
    """`memento eval grade`: grade responses generated elsewhere, with the same graders and KV replay."""

    benchmark: str = field(metadata=_help("benchmark name or local file the responses answer"))
    responses: str = field(
        metadata=_help(
            "JSONL: 'id' (the problem id) and 'response' per line; optional 'mode' and 'sample' "
            "(a `memento eval` samples.jsonl works as is)"
        )
    )
    tokenizer: str | None = field(
        default=None, metadata=_help("local Hugging Face tokenizer for token counts and KV (default: approximate)")
    )
    model_config: str | None = field(default=None, metadata=_help("checkpoint dir or config.json: KV geometry"))
    geometry: str | None = field(
        default=None, metadata=_help("KV geometry preset (default qwen3-8b): qwen3-8b, qwen3-32b, phi-4-reasoning, ...")
    )
    mask_delimiters: bool | None = field(
        default=None, metadata=_help("the model's mask_delimiters (default: per model family of --model-config)")
    )
    config: str | None = field(
        default=None,
        metadata=_help(
            "memento config (JSON or a .json file) replaying modes other than memento/no_eviction/restart/baseline"
        ),
    )
    limit: int | None = field(default=None, metadata=_help("only the first M problems of the benchmark"))
    choice_seed: int = field(default=0, metadata=_help("seed of the multiple-choice shuffle the prompts used"))
    offline: bool = field(default=False, metadata=_help("never load a benchmark from the Hugging Face hub"))
    prompt_template: str | None = field(
        default=None, metadata=_help("the prompt template the responses were generated with (for prompt tokens)")
    )
    output: str | None = field(default=None, metadata=_help("write summary.json and plots into this directory"))
    grade_workers: int | None = field(
        default=None, metadata=_help("parallel graders and code sandboxes (default: CPUs)")
    )

    def __post_init__(self) -> None:
        if self.model_config is not None and self.geometry is not None:
            raise ValueError("give --model-config or --geometry, not both")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.grade_workers is not None and self.grade_workers < 1:
            raise ValueError(f"grade_workers must be >= 1, got {self.grade_workers}")

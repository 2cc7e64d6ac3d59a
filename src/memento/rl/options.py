"""`RLOptions`: every knob of `memento rl`, with help text the CLI is generated from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from memento.rl.rewards import GRADER_NAMES

ATTENTION_CHOICES = ("dense", "block-sparse")
ROLLOUT_CHOICES = ("hf", "vllm")


@dataclass
class RLOptions:
    """CISPO on memento rollouts. Defaults: the paper's KL coefficient 0.001; TRL/ScaleRL's upper
    importance-weight clip 5.0 with a lower clip of 0.2 (symmetric in log space); one completion
    batch per optimizer step (on-policy), sampled at temperature 1; constant learning rate."""

    model: str = field(metadata={"help": "local Hugging Face checkpoint of a memento model"})
    output: str = field(metadata={"help": "directory for the trained checkpoint, rollouts.jsonl and memento_rl.json"})
    benchmark: str = field(
        default="toy",
        metadata={
            "help": "what `memento eval --benchmark` takes: a name (math500, gsm8k, aime24, aime25, humaneval, "
            "gpqa-diamond, livecodebench, toy: drawn from RL's own seeds, never eval's held-out problems) or a local "
            "JSONL/JSON/parquet file with 'problem' and 'answer' (or 'choices', or 'tests') per row"
        },
    )
    num_generations: int = field(default=8, metadata={"help": "completions per prompt (the group G)"})
    max_steps: int = field(default=100, metadata={"help": "optimizer steps"})
    config: str | None = field(
        default=None,
        metadata={
            "help": "memento attention options as JSON (or a .json file) for rollouts and training, read as "
            '`memento eval --config` reads them: off unless "enable": true; default keep_last_n_blocks=0 with the '
            "model family's mask_delimiters; keep_last_n_blocks=-1: no eviction"
        },
    )
    prompts_per_step: int = field(default=4, metadata={"help": "prompts per optimizer step (x G completions)"})
    learning_rate: float = field(default=1e-6, metadata={"help": "AdamW learning rate"})
    beta: float = field(
        default=0.001, metadata={"help": "KL coefficient against the starting model (0 = no reference)"}
    )
    max_is_weight: float = field(default=5.0, metadata={"help": "CISPO: upper clip of the importance weight"})
    min_is_weight: float = field(
        default=0.2, metadata={"help": "CISPO: lower clip of the importance weight (0 = upper clip only, as TRL)"}
    )
    num_iterations: int = field(default=1, metadata={"help": "optimizer passes over each batch of rollouts"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the rollouts"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling of the rollouts (1 = off)"})
    top_k: int = field(default=0, metadata={"help": "top-k sampling of the rollouts (0 = off)"})
    max_completion_length: int = field(default=1024, metadata={"help": "new tokens per rollout"})
    rollout_batch_size: int = field(default=64, metadata={"help": "sequences decoded together while sampling"})
    rollouts: Literal["hf", "vllm"] = field(
        default="hf",
        metadata={
            "help": "rollout engine: hf (transformers, MementoGenerator) or vllm (vLLM with the memento plugin, in "
            "this process; weights reloaded after every optimizer step)"
        },
    )
    vllm_gpu_memory_utilization: float = field(
        default=0.3,
        metadata={
            "help": "--rollouts vllm on a GPU: fraction of its memory vLLM takes for weights and KV cache (the CPU "
            "build gets a KV pool holding rollout_batch_size full-length sequences)"
        },
    )
    reward: str = field(
        default="auto",
        metadata={
            "help": "correctness grader (weight 1): auto (each problem's kind: math-verify, choice, code tests, "
            "toy checker), or toy, math, choice or code for every problem"
        },
    )
    code_timeout: float = field(
        default=10.0, metadata={"help": "seconds the tests of one code completion may run in the sandbox"}
    )
    well_formed_weight: float = field(
        default=0.0, metadata={"help": "weight of the well-formed-blocks reward (0 = off)"}
    )
    memento_cap_tokens: int = field(
        default=0, metadata={"help": "mementos longer than this are penalised (0 = off; needs a weight)"}
    )
    memento_cap_weight: float = field(default=0.0, metadata={"help": "weight of the memento length penalty"})
    problems: int = field(
        default=0, metadata={"help": "the benchmark's first N problems (0 = all); toy: N drawn (0 = 1000)"}
    )
    offline: bool = field(default=False, metadata={"help": "never load a benchmark from the Hugging Face hub"})
    attention: str = field(
        default="dense",
        metadata={"help": "training mask: dense or block-sparse (" + ", ".join(ATTENTION_CHOICES) + ")"},
    )
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    save_steps: int = field(default=0, metadata={"help": "save a checkpoint every N steps (0 = only the final model)"})
    logging_steps: int = field(default=1, metadata={"help": "log metrics every N steps"})
    bf16: bool = field(default=False, metadata={"help": "train in bfloat16 (GPU)"})
    seed: int = field(default=0, metadata={"help": "seed of sampling, data order and initialisation"})

    def __post_init__(self) -> None:
        positive = {
            "num_generations": self.num_generations,
            "max_steps": self.max_steps,
            "prompts_per_step": self.prompts_per_step,
            "num_iterations": self.num_iterations,
            "max_completion_length": self.max_completion_length,
            "rollout_batch_size": self.rollout_batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "logging_steps": self.logging_steps,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.num_generations < 2:
            raise ValueError(
                f"num_generations must be >= 2 (advantages are relative within a group), got {self.num_generations}"
            )
        for name in ("learning_rate", "temperature", "max_is_weight", "code_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if not 0 <= self.min_is_weight < 1 < self.max_is_weight:
            raise ValueError(
                f"importance-weight clips must satisfy 0 <= min_is_weight < 1 < max_is_weight, got "
                f"{self.min_is_weight} and {self.max_is_weight}"
            )
        if not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError(f"top_p must be in (0, 1] and top_k >= 0, got {self.top_p} and {self.top_k}")
        if self.memento_cap_tokens < 0 or self.problems < 0 or self.save_steps < 0:
            raise ValueError("memento_cap_tokens, problems and save_steps must be >= 0")
        if self.well_formed_weight < 0 or self.memento_cap_weight < 0:
            raise ValueError("reward weights must be >= 0 (the memento penalty is already negative)")
        if self.reward not in GRADER_NAMES:
            raise ValueError(f"reward must be one of {', '.join(GRADER_NAMES)}, got {self.reward!r}")
        if self.rollouts not in ROLLOUT_CHOICES:
            raise ValueError(f"rollouts must be one of {ROLLOUT_CHOICES}, got {self.rollouts!r}")
        if not 0 < self.vllm_gpu_memory_utilization < 1:
            raise ValueError(f"vllm_gpu_memory_utilization must be in (0, 1), got {self.vllm_gpu_memory_utilization}")
        if self.attention not in ATTENTION_CHOICES:
            raise ValueError(f"attention must be one of {ATTENTION_CHOICES}, got {self.attention!r}")

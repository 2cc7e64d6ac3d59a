"""`run_rl`: load a memento checkpoint, train it with CISPO on rollouts under eviction, save an HF checkpoint."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from memento.config import MementoConfig, default_mask_delimiters
from memento.eval.benchmarks.problems import Problem
from memento.eval.grading.sandbox import SandboxLimits
from memento.eval.run.modes import builtin_mode, parse_memento_config
from memento.inference.sampling import SamplingOptions
from memento.rl.data import dataset_rows, load_problems
from memento.rl.options import RLOptions
from memento.rl.rewards import (
    WeightedReward,
    as_trl_reward,
    check_grader,
    correctness_reward,
    each,
    memento_length_penalty,
    well_formed_reward,
)
from memento.rl.rollout import MementoRollout, encode_prompt
from memento.rl.trainer import MementoGRPOTrainer

logger = logging.getLogger("memento.rl")

CORRECT = "correct"
"""Name of the correctness term in the logs and rollouts.jsonl (the grader is `RLOptions.reward`)."""
DEFAULT_MODE = "memento"
"""Without --config, rollouts and training use memento.eval's `memento` mode: every block evicted."""


def resolve_memento_config(text: str | None, model_type: str) -> MementoConfig:
    """The memento config of `--config` (JSON or a .json file, read by memento.eval's
    `parse_memento_config`: off unless ``"enable": true``), or memento.eval's `memento` mode when
    None; `mask_delimiters` follows the model family unless the config sets it."""
    mask_delimiters = default_mask_delimiters(model_type)
    if text is None:
        config = builtin_mode(DEFAULT_MODE, mask_delimiters).config
        assert config is not None
        return config
    return parse_memento_config(text, mask_delimiters)


def reward_terms(options: RLOptions, tokenizer: Any) -> list[WeightedReward]:
    """The grader (weight 1) and the shaping terms that have a weight."""
    limits = SandboxLimits(timeout_s=options.code_timeout)
    terms = [WeightedReward(CORRECT, correctness_reward(options.reward, limits=limits))]
    if options.well_formed_weight > 0:
        terms.append(WeightedReward("well_formed", each(well_formed_reward), options.well_formed_weight))
    if options.memento_cap_tokens and options.memento_cap_weight > 0:
        count = lambda text: len(tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
        penalty = memento_length_penalty(options.memento_cap_tokens, count)
        terms.append(WeightedReward("memento_length", each(penalty), options.memento_cap_weight))
    return terms


def grpo_config(options: RLOptions, weights: list[float]) -> Any:
    """TRL's GRPOConfig for CISPO with our options."""
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=options.output,
        loss_type="cispo",
        beta=options.beta,
        epsilon_high=options.max_is_weight,  # TRL's CISPO clamps the weight at epsilon_high (an absolute bound)
        num_generations=options.num_generations,
        per_device_train_batch_size=options.prompts_per_step * options.num_generations,
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        num_iterations=options.num_iterations,
        max_steps=options.max_steps,
        learning_rate=options.learning_rate,
        lr_scheduler_type="constant",
        temperature=options.temperature,
        top_p=options.top_p,
        top_k=options.top_k,
        max_completion_length=options.max_completion_length,
        reward_weights=weights,
        logging_steps=options.logging_steps,
        save_strategy="steps" if options.save_steps else "no",
        save_steps=options.save_steps or 500,
        seed=options.seed,
        bf16=options.bf16,
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )


def rollout_engine(model_dir: Path, model: Any, options: RLOptions, longest_prompt: int) -> Any:
    """The in-process vLLM engine of ``--rollouts vllm``: the checkpoint in the trainer's dtype, up to
    `rollout_batch_size` sequences at once, each up to the longest prompt + max_completion_length tokens
    (at most the model's positions)."""
    from memento.rl.vllm_engine import RolloutEngine

    positions = getattr(model.config.get_text_config(), "max_position_embeddings", None) or 4096
    positions = min(positions, longest_prompt + options.max_completion_length)
    arguments: dict[str, Any] = {"max_num_seqs": options.rollout_batch_size, "max_model_len": positions}
    if torch.cuda.is_available():
        arguments["gpu_memory_utilization"] = options.vllm_gpu_memory_utilization
    else:  # a pool for the whole batch at full length, not a fraction of the host's memory
        block_size = 32
        arguments |= {
            "block_size": block_size,
            "num_gpu_blocks_override": options.rollout_batch_size * -(-positions // block_size) + 1,
        }
    return RolloutEngine(model_dir, dtype="bfloat16" if options.bf16 else "float32", seed=options.seed, **arguments)


def completion_budget(config: Any, longest_prompt: int, max_completion_length: int) -> int:
    """New tokens per rollout: `max_completion_length`, cut so the longest prompt plus its completion fits the
    model's positions (said once, on stderr, instead of a warning per prompt)."""
    positions = getattr(config.get_text_config(), "max_position_embeddings", None)
    if positions is None or longest_prompt + max_completion_length <= positions:
        return max_completion_length
    budget = positions - longest_prompt
    if budget < 1:
        raise ValueError(f"the longest prompt has {longest_prompt} tokens, the model holds {positions} positions")
    print(
        f"memento rl: completions capped at {budget} tokens (--max-completion-length {max_completion_length}; the "
        f"model holds {positions} positions and the longest prompt has {longest_prompt} tokens)",
        file=sys.stderr,
    )
    return budget


def run_rl(options: RLOptions, *, problems: Sequence[Problem] | None = None, engine: Any = None) -> Path:
    """Train `options.model` with CISPO on memento rollouts; returns the directory of the saved checkpoint.

    `problems` (memento.eval `Problem`s) overrides `options.benchmark`. The output holds the model and
    tokenizer (an ordinary HF checkpoint), ``rollouts.jsonl`` (every rollout with its problem id, each
    reward, blocks and peak KV) and ``memento_rl.json`` (options, config, metrics).

    `engine` (``--rollouts vllm`` only): a `RolloutEngine` of the same checkpoint to sample with instead
    of starting one (benches and tests run several trainings on one engine; it is left open). Its
    weights are reloaded from the policy before the first rollout.
    """
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(options.model)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a Hugging Face checkpoint directory (no config.json)")
    output = Path(options.output)
    if problems is None:
        problems = load_problems(options.benchmark, options.problems, seed=options.seed, use_hub=not options.offline)
    rows = dataset_rows(problems)
    check_grader(options.reward, problems)  # before the model loads
    by_id = {problem.id: problem for problem in problems}
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    dtype = torch.bfloat16 if options.bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, local_files_only=True, dtype=dtype, attn_implementation="sdpa"
    )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    memento_config = resolve_memento_config(options.config, model.config.model_type)
    terms = reward_terms(options, tokenizer)
    longest = max(len(encode_prompt(tokenizer, row["prompt"])) for row in rows)
    sampling = SamplingOptions(
        temperature=options.temperature,
        top_p=options.top_p,
        top_k=options.top_k,
        max_new_tokens=completion_budget(model.config, longest, options.max_completion_length),
    )
    if engine is not None and options.rollouts != "vllm":
        raise ValueError("an engine is for --rollouts vllm")
    owned = engine is None and options.rollouts == "vllm"
    if options.rollouts == "vllm":
        from memento.rl.vllm_rollout import VLLMRollout

        if engine is None:
            engine = rollout_engine(model_dir, model, options, longest)
        rollout: Any = VLLMRollout(engine, tokenizer, memento_config, sampling)
    else:
        rollout = MementoRollout(
            tokenizer, memento_config, sampling, batch_size=options.rollout_batch_size, seed=options.seed
        )
    output.mkdir(parents=True, exist_ok=True)
    (output / "rollouts.jsonl").unlink(missing_ok=True)
    trainer = MementoGRPOTrainer(
        model=model,
        reward_funcs=[as_trl_reward(term, by_id) for term in terms],
        args=grpo_config(options, [term.weight for term in terms]),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        rollout_func=rollout,
        memento_config=memento_config,
        min_is_weight=options.min_is_weight,
        attention=options.attention,
        rollout_log=output / "rollouts.jsonl",
        rollout_engine=engine,
    )
    try:
        trainer.train()
    finally:
        if owned:
            engine.close()
    trainer.save_model(str(output))
    tokenizer.save_pretrained(str(output))
    (output / "memento_rl.json").write_text(
        json.dumps(
            {
                "options": asdict(options),
                "memento_config": memento_config.to_dict(),
                "rewards": {term.name: term.weight for term in terms},
                "log_history": trainer.state.log_history,
            },
            indent=2,
        )
    )
    return output

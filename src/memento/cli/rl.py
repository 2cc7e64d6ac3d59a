"""`memento rl`: CISPO on rollouts sampled with eviction, on TRL (memento.rl; the optional `rl` extra)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from memento.cli import options, paths
from memento.errors import UsageError

NAME = "rl"
HELP = "reinforcement learning (CISPO on TRL) on memento rollouts under eviction"


def configure(parser: argparse.ArgumentParser) -> None:
    """One flag per `RLOptions` field (its default and help live there)."""
    from memento.rl.options import RLOptions

    parser.description = (
        "Train a memento checkpoint further with CISPO on rollouts sampled with its blocks evicted; "
        "the output is an ordinary Hugging Face checkpoint plus rollouts.jsonl and memento_rl.json."
    )
    options.add_options(parser, RLOptions)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check everything that can be checked before the model loads, then train and save."""
    from memento.rl.options import RLOptions

    rl_options = options.from_args(RLOptions, args)
    try:
        import trl  # noqa: F401
    except ImportError:
        raise UsageError("memento rl needs TRL, which is not installed: pip install 'memento[rl]'") from None
    if rl_options.rollouts == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise UsageError(
                "--rollouts vllm needs vLLM, which is not installed: pip install 'memento[vllm]'"
            ) from None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UsageError(
                "--rollouts vllm runs one engine in one trainer process; launch memento rl without torchrun/accelerate "
                "(or use --rollouts hf)"
            )
    model = paths.checkpoint_directory(Path(rl_options.model), "--model")
    rl_options.model = str(model)
    paths.output_directory(Path(rl_options.output), "--output")
    paths.output_apart_from_model(Path(rl_options.output), model)

    from memento.eval.benchmarks.sources import BenchmarkUnavailable
    from memento.rl.data import load_problems
    from memento.rl.rewards import check_grader
    from memento.rl.run import resolve_memento_config, run_rl

    try:
        problems = load_problems(
            rl_options.benchmark, rl_options.problems, seed=rl_options.seed, use_hub=not rl_options.offline
        )
    except BenchmarkUnavailable as error:
        raise UsageError(f"--benchmark: {error}") from None
    check_grader(rl_options.reward, problems)
    try:
        resolve_memento_config(rl_options.config, options.checkpoint_model_type(model) or "")
    except ValueError as error:
        raise UsageError(f"--config: {error}") from None
    output = run_rl(rl_options, problems=problems)
    print(f"trained checkpoint, rollouts.jsonl and memento_rl.json -> {output}")
    return 0

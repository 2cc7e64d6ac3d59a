"""`memento serve`: vLLM's OpenAI-compatible server with memento block masking."""

from __future__ import annotations

import argparse
from pathlib import Path

from memento.cli import options, paths

NAME = "serve"
HELP = "serve a memento checkpoint over the OpenAI API (vLLM backend)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `memento serve` to its parser; arguments after `--` go to vLLM."""
    parser.description = (
        "Start vLLM's OpenAI-compatible server with memento block masking. Arguments after `--` go to vLLM unchanged."
    )
    parser.add_argument("--backend", choices=["vllm"], default="vllm")
    parser.add_argument("--model", type=Path, required=True, help="checkpoint directory or hub id ORG/NAME[@REVISION]")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--max-model-len", type=int, default=None)
    parser.add_argument("--num-blocks", type=int, default=None, help="fix the KV pool at this many blocks")
    parser.add_argument("--block-size", type=int, default=None, help="tokens per KV block (CPU: a multiple of 32)")
    parser.add_argument("--memory-fraction", type=float, default=0.4, help="vLLM's --gpu-memory-utilization")
    parser.add_argument(
        "--block-masking-config",
        default=None,
        help="the authors' JSON (enable, keep_last_n_blocks, mask_delimiters, ...); overrides the flags below",
    )
    parser.add_argument(
        "--skip-verify",
        action="store_true",
        help="on a GPU, serve without first passing `memento verify` on this configuration: attention may then "
        "silently see evicted blocks or miss live ones",
    )
    options.add_memento_options(parser)
    parser.set_defaults(run=run, passthrough=[])


def run(args: argparse.Namespace) -> int:
    """Build vLLM's command line and become the server (never returns on success)."""
    from memento.config import MementoConfig
    from memento.vllm.serve import serve, server_command

    args.model = paths.checkpoint_directory(args.model, "--model")
    if args.block_masking_config is not None:
        config = MementoConfig.from_json(args.block_masking_config)
    else:
        config = options.memento_config(args, options.checkpoint_model_type(args.model))
    argv, environment = server_command(
        args.model,
        config if config.enable else None,
        host=args.host,
        port=args.port,
        dtype=args.dtype,
        max_model_len=args.max_model_len,
        num_blocks=args.num_blocks,
        block_size=args.block_size,
        memory_fraction=args.memory_fraction,
        extra=args.passthrough,
    )
    if config.enable:
        check_gpu_configuration(args, config)
    serve(argv, environment)
    return 0  # not reached: serve() replaces this process


def check_gpu_configuration(args: argparse.Namespace, config: object) -> None:
    """On CUDA: say what GPU serving rests on, and run `memento verify` once per configuration (unless skipped)."""
    import sys

    import torch

    if not torch.cuda.is_available():
        return  # vLLM's CPU backend: verified by the test suite (tests/vllm)
    from memento.errors import UsageError
    from memento.vllm.verified import GPU_STATUS, ensure_verified

    print(GPU_STATUS, file=sys.stderr)
    if args.skip_verify:
        print("memento: --skip-verify: serving on a GPU configuration memento verify has not passed", file=sys.stderr)
        return
    vllm_flags = argparse.ArgumentParser(add_help=False)
    vllm_flags.add_argument("--attention-backend", default=None)
    vllm_flags.add_argument("--kv-cache-dtype", default="auto")
    vllm_flags.add_argument("--enforce-eager", action="store_true")
    given, _ = vllm_flags.parse_known_args(list(args.passthrough))  # also --flag=value
    if given.kv_cache_dtype != "auto":
        raise UsageError(
            f"--kv-cache-dtype {given.kv_cache_dtype}: memento verify checks only the model's own KV dtype so far; "
            "--skip-verify serves anyway, at the risk of wrong attention"
        )
    dtype = args.dtype if args.dtype in ("float32", "float16", "bfloat16") else "bfloat16"
    verdict, ran = ensure_verified(args.model, dtype, given.attention_backend, given.enforce_eager, args.block_size)
    print(
        f"memento verify {'passed' if ran else 'passed before'} on this configuration ({verdict['attention_backend']}, "
        f"{dtype}): largest log-prob difference {verdict['max_abs_logprob_diff']:.3g}",
        file=sys.stderr,
    )

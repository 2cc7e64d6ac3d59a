"""`memento serve`: vLLM's OpenAI-compatible server with memento block masking."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from memento.cli import options, paths

NAME = "serve"
HELP = "serve a memento checkpoint over the OpenAI API (vLLM backend)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `memento serve` to its parser; arguments after `--` go to vLLM."""
    parser.description = (
        "Start vLLM's OpenAI-compatible server with memento block masking. Arguments after `--` go to vLLM unchanged."
    )
    parser.add_argument("--backend", choices=["vllm"], default="vllm")
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="checkpoint directory, hub id ORG/NAME[@REVISION], a .gguf file, or smollm2 (SmolLM2-135M-Instruct, "
        "installed by the setup; serve it with --plain)",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="serve the model as vLLM does, without memento attention (any chat model, e.g. for memento prompted)",
    )
    parser.add_argument("--verbose", action="store_true", help="show vLLM's whole log (default: warnings and errors)")
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
        help="serve what `memento verify` has not passed: on a GPU, without running it on this configuration; "
        "anywhere, with a --kv-cache-dtype it does not check. Attention may then silently see evicted blocks or "
        "miss live ones",
    )
    options.add_memento_options(parser)
    parser.set_defaults(run=run, passthrough=[])


def run(args: argparse.Namespace) -> int:
    """Build vLLM's command line and become the server (never returns on success)."""
    from memento.config import MementoConfig
    from memento.vllm.serve import serve, served_engine_arguments, server_command

    model, served_name = _model(args.model)
    args.model = model
    if args.plain:
        config = MementoConfig(enable=False)
    elif args.block_masking_config is not None:
        config = MementoConfig.from_json(args.block_masking_config)
    else:
        config = options.memento_config(args, options.checkpoint_model_type(model))
    argv, environment = server_command(  # refuses what the plugin refuses in this command line, before vLLM starts
        model,
        config if config.enable else None,
        host=args.host,
        port=args.port,
        dtype=args.dtype,
        max_model_len=args.max_model_len,
        num_blocks=args.num_blocks,
        block_size=args.block_size,
        memory_fraction=args.memory_fraction,
        verbose=args.verbose,
        served_name=served_name,
        extra=args.passthrough,
    )
    if config.enable:
        check_gpu_configuration(args, config, served_engine_arguments(argv))
    mode = "memento attention" if config.enable else "plain, no memento attention"
    print(
        f"memento serve: starting vLLM ({mode}) for {served_name or model} at http://{args.host}:{args.port}/v1; "
        "ready when GET /v1/models answers (a minute or more on CPU)"
        + ("" if args.verbose else "; --verbose for vLLM's log"),
        file=sys.stderr,
    )
    serve(argv, environment)
    return 0  # not reached: serve() replaces this process


def _model(flag: Path) -> tuple[Path, str | None]:
    """The checkpoint directory to serve and the name clients use for it (None: the path, vLLM's default).

    A named chat model (`memento.chat_models`) is served under its name; a .gguf is converted once (cached).
    """
    from memento.chat_models import CHAT_MODELS, chat_model_file

    if str(flag) in CHAT_MODELS and not flag.exists():
        from memento.inference.loading import resolve_checkpoint

        return resolve_checkpoint(chat_model_file(str(flag))), str(flag)
    return paths.model_checkpoint(flag, "--model"), None


def check_gpu_configuration(args: argparse.Namespace, config: Any, engine_args: Any) -> None:
    """Serve only what memento verified: on CUDA, run `memento verify` once per configuration (unless skipped).

    `engine_args` is vLLM's reading of the whole server command line (`served_engine_arguments`), so the
    configuration verified is the one served: ``--dtype half`` is float16, the last of a repeated flag wins.
    A KV cache dtype other than the model's is refused on any platform (memento verify does not check one yet).
    """
    import torch

    from memento.errors import UsageError
    from memento.vllm.refusals import backend_names

    kv_cache_dtype = str(engine_args.kv_cache_dtype)
    if kv_cache_dtype != "auto" and not args.skip_verify:
        raise UsageError(
            f"--kv-cache-dtype {kv_cache_dtype}: memento verify checks only the model's own KV dtype so far; "
            "--skip-verify serves anyway, at the risk of wrong attention"
        )
    if not torch.cuda.is_available():
        return  # vLLM's CPU backend: verified by the test suite (tests/vllm)
    from memento.vllm import verified
    from memento.vllm.arguments import model_dtype

    print(verified.GPU_STATUS, file=sys.stderr)
    if args.skip_verify:
        print("memento: --skip-verify: serving on a GPU configuration memento verify has not passed", file=sys.stderr)
        return
    dtype = model_dtype(args.model, engine_args.dtype)
    backends = backend_names(engine_args.attention_backend) + backend_names(engine_args.attention_config.backend)
    verified.check_cache_directory()
    verdict, ran = verified.ensure_verified(
        args.model,
        dtype,
        backends[0] if backends else None,
        bool(engine_args.enforce_eager),
        engine_args.block_size,
        kv_cache_dtype=kv_cache_dtype,
        memento_config=config,
    )
    print(
        f"memento verify {'passed' if ran else 'passed before'} on this configuration "
        f"({verdict.get('attention_backend')}, {dtype}): largest log-prob difference "
        f"{verdict.get('max_abs_logprob_diff')}",
        file=sys.stderr,
    )
    from memento.vllm.verify import unverifiable

    reason = unverifiable(config)
    if reason is not None:
        print(f"memento: the served masking config's own rule is not checked ({reason})", file=sys.stderr)

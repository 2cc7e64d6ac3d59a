"""`memento verify`: check that memento attention is exact on this machine's vLLM (backend, dtype, graph mode)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from memento.cli import paths

NAME = "verify"
HELP = "check memento attention on this machine's vLLM build against the HF reference"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `memento verify`."""
    parser.description = (
        "Run memento-format sequences through vLLM with the memento plugin (prompts holding finished blocks, "
        "then greedy decoding that closes a memento) and through the HF reference (MementoGenerator.score), "
        "with the same requests unmasked as a negative control. Exit 0 only when vLLM agrees with the reference "
        "within the dtype's tolerance and the control does not; 1 when the check fails or cannot tell; 2 on bad "
        "input; 130/143 when interrupted. With --json the last line of stdout is a JSON object, whatever happens."
    )
    parser.add_argument("--model", type=Path, required=True, help="checkpoint directory or hub id ORG/NAME[@REVISION]")
    parser.add_argument("--backend", choices=["vllm"], default="vllm")
    parser.add_argument("--attention-backend", default=None, help="vLLM attention backend (default: vLLM's choice)")
    parser.add_argument(
        "--dtype",
        default=None,
        help="float32, float16 or bfloat16 (default: the dtype memento serve runs: bfloat16 on CUDA, float32 on CPU)",
    )
    parser.add_argument(
        "--weights",
        choices=["random", "checkpoint"],
        default="random",
        help="random: a 2-layer random model with the checkpoint's attention geometry; checkpoint: its own weights",
    )
    parser.add_argument("--block-size", type=int, default=None, help="KV block size (default 16 on GPU, 32 on CPU)")
    parser.add_argument("--enforce-eager", action="store_true", default=None, help="no CUDA graphs (GPU)")
    parser.add_argument(
        "--block-masking-config",
        default=None,
        help="the JSON config a server runs (as memento serve takes it): its attention rule is checked beside the "
        "two built-in configs (its marker tokens and block cap are not: the prompts use the default markers)",
    )
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32, help="greedy tokens decoded after each prompt")
    parser.add_argument("--json", action="store_true", help="no summary line: the JSON verdict is stdout's last line")
    parser.add_argument("--verbose", action="store_true", help="show vLLM's and transformers' logs (stderr)")
    parser.set_defaults(run=run)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Library output meant for stdout (vLLM's log, DeepSpeed's, C++ prints) goes to stderr meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _quiet(verbose: bool) -> None:
    """vLLM logs to stderr, at WARNING unless --verbose; transformers' progress bars and infos off."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    if verbose:
        return
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def _progress(line: str) -> None:
    print(f"memento verify: {line}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when the check passes, 1 when it fails or cannot tell, 2 on bad input, 128 + signal when interrupted."""
    from memento.vllm.interrupts import Interrupted

    try:
        return _run(args)
    except Interrupted as error:
        print(f"memento verify: {error}; no verdict", file=sys.stderr)
        _json_error(args, f"{error}; no verdict")
        return 128 + error.signal_number
    except KeyboardInterrupt:
        _json_error(args, "interrupted by SIGINT; no verdict")
        raise
    except BaseException as error:
        _json_error(args, " ".join(str(error).split()) or type(error).__name__)
        raise


def _json_error(args: argparse.Namespace, error: str) -> None:
    """With --json the last stdout line is JSON whatever happens (the error itself also goes to stderr)."""
    if args.json:
        print(json.dumps({"passed": False, "error": error}, sort_keys=True), flush=True)


def _run(args: argparse.Namespace) -> int:
    from memento.config import MementoConfig
    from memento.vllm.verify import VerifyOptions, check_verify_start, run_verify

    args.model = paths.checkpoint_directory(args.model, "--model")
    options = VerifyOptions(
        model=args.model,
        weights=args.weights,
        attention_backend=args.attention_backend,
        dtype=args.dtype,
        block_size=args.block_size,
        enforce_eager=args.enforce_eager,
        sequences=args.sequences,
        max_tokens=args.max_tokens,
        masking=None if args.block_masking_config is None else MementoConfig.from_json(args.block_masking_config),
    )
    check_verify_start(options)  # one line, exit 2, before anything is loaded (run_verify checks again: cheap)
    _quiet(args.verbose)
    with _stdout_to_stderr():
        result = run_verify(options, progress=_progress)
    if not args.json:
        verdict = "PASSED" if result.passed else "FAILED"
        print(
            f"memento verify {verdict}: vLLM {result.vllm} {result.attention_backend} {result.dtype} "
            f"on {result.device} "
            f"({'eager' if result.enforce_eager else 'graphs'}, {result.weights} weights): largest log-prob difference "
            f"{result.max_abs_logprob_diff:.3g} (tolerance {result.tolerance:g}; unmasked control "
            f"{result.control_max_abs_logprob_diff:.3g}) at {result.worst}; greedy tokens "
            f"{'equal' if result.tokens_equal else 'DIFFER'} ({result.tokens_compared} judged, {result.tokens_close} "
            f"too close to call); {result.evictions} spans evicted ({result.decode_evictions} while decoding), "
            f"{result.blocks_released} blocks given back; {len(result.masking_configs)} masking configs checked"
        )
    if not result.can_tell:
        print(
            "memento verify: CANNOT TELL, the unmasked control is off by only "
            f"{result.control_max_abs_logprob_diff:.6g} (tolerance {result.tolerance:g}): agreement here would not "
            "show that masking works",
            file=sys.stderr,
        )
    elif not result.passed:
        print(
            f"memento verify: FAILED, largest log-prob difference {result.max_abs_logprob_diff:.6g} at {result.worst}"
            f" (tolerance {result.tolerance:g}); greedy tokens {'equal' if result.tokens_equal else 'DIFFER'}; "
            f"{result.decode_evictions} spans evicted while decoding, {result.blocks_released} blocks given back",
            file=sys.stderr,
        )
    print(result.to_json(), flush=True)
    return 0 if result.passed else 1

"""`memento verify`: check that memento attention is exact on this machine's vLLM (backend, dtype, graph mode)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memento.cli import paths

NAME = "verify"
HELP = "check memento attention on this machine's vLLM build against the HF reference"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `memento verify`."""
    parser.description = (
        "Run memento-format sequences whose prompts hold finished blocks through vLLM with the memento plugin "
        "(teacher-forced log-probs, greedy decoding) and through the HF reference (MementoGenerator.score); "
        "exit 0 only when they agree within the dtype's tolerance. The last line of stdout is a JSON object."
    )
    parser.add_argument("--model", type=Path, required=True, help="checkpoint directory or hub id ORG/NAME[@REVISION]")
    parser.add_argument("--backend", choices=["vllm"], default="vllm")
    parser.add_argument("--attention-backend", default=None, help="vLLM attention backend (default: vLLM's choice)")
    parser.add_argument("--dtype", default="float32", help="float32, float16 or bfloat16")
    parser.add_argument(
        "--weights",
        choices=["random", "checkpoint"],
        default="random",
        help="random: a 2-layer random model with the checkpoint's attention geometry; checkpoint: its own weights",
    )
    parser.add_argument("--block-size", type=int, default=None, help="KV block size (default 16 on GPU, 32 on CPU)")
    parser.add_argument("--enforce-eager", action="store_true", default=None, help="no CUDA graphs (GPU)")
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32, help="greedy tokens decoded after each prompt")
    parser.add_argument("--json", action="store_true", help="no summary line: the JSON verdict is stdout's last line")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when the check passes, 1 when it fails (the difference printed), 2 on bad input."""
    from memento.vllm.verify import VerifyOptions, run_verify

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
    )
    result = run_verify(options)
    if not args.json:
        verdict = "PASSED" if result.passed else "FAILED"
        print(
            f"memento verify {verdict}: vLLM {result.vllm} {result.attention_backend} {result.dtype} "
            f"on {result.device} "
            f"({'eager' if result.enforce_eager else 'graphs'}, {result.weights} weights): largest log-prob difference "
            f"{result.max_abs_logprob_diff:.3g} (tolerance {result.tolerance:g}) at {result.worst}; greedy tokens "
            f"{'equal' if result.tokens_equal else 'DIFFER'}; {result.evictions} spans evicted, "
            f"{result.blocks_released} blocks given back"
        )
    if not result.passed:
        print(
            f"memento verify: FAILED, largest log-prob difference {result.max_abs_logprob_diff:.6g} at {result.worst}",
            file=sys.stderr,
        )
    print(result.to_json(), flush=True)
    return 0 if result.passed else 1

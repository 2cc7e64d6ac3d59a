"""`memento generate`: decode with memento attention and real KV eviction."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from memento import textfiles
from memento.cli import options, paths
from memento.config import MementoConfig
from memento.errors import UsageError
from memento.format import read_jsonl

NAME = "generate"
HELP = "generate with memento attention and real KV eviction"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `memento generate` to its parser."""
    from memento.inference.sampling import SamplingOptions

    parser.description = (
        "Generate from a memento checkpoint; blocks leave the KV cache as soon as their memento closes."
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="checkpoint directory or hub id ORG/NAME[@REVISION] (default: the embedded toy model)",
    )
    prompt = parser.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="user message (the chat template is applied)")
    prompt.add_argument(
        "--file", type=Path, help="text file holding the prompt, or JSONL with 'prompt'/'problem' per line"
    )
    options.add_options(parser, SamplingOptions, title="sampling", helps={"seed": "sampling seed"})
    parser.add_argument("--stream", action="store_true", help="print tokens as they come")
    parser.add_argument("--json", action="store_true", help="print one JSON object per prompt")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--attn-implementation", default="sdpa", choices=["sdpa", "eager"])
    options.add_memento_options(parser)
    parser.set_defaults(run=run)


def read_prompts(args: argparse.Namespace) -> list[str]:
    """The prompt, or the prompts in `--file` (whole text, or JSONL with 'prompt' / 'problem' per line)."""
    if args.prompt is not None:
        if not args.prompt.strip():
            raise UsageError("--prompt: the prompt is empty; expected the text of a user message")
        return [args.prompt]
    path = paths.existing_file(args.file, "--file")
    if path.suffix != ".jsonl":
        prompts = [textfiles.read_text(path, error=UsageError)]
    else:
        prompts = []
        for number, record in read_jsonl(path):
            value = record.get("prompt", record.get("problem")) if isinstance(record, dict) else None
            if not isinstance(value, str) or not value.strip():
                raise UsageError(f"{path}:{number}: expected an object with a non-empty string 'prompt' or 'problem'")
            prompts.append(value)
    if not prompts or not any(p.strip() for p in prompts):
        raise UsageError(f"--file {path}: holds no prompt (the file is empty)")
    return prompts


def run(args: argparse.Namespace) -> int:
    """Check every option, load the model, then generate and print each result."""
    from memento.inference import MementoGenerator
    from memento.inference.loading import load_model_and_tokenizer
    from memento.inference.sampling import SamplingOptions, position_limit
    from memento.toy import CHECKPOINT

    sampling = options.from_args(SamplingOptions, args)
    prompts = read_prompts(args)
    model_dir = paths.checkpoint_directory(args.model or CHECKPOINT, "--model")
    config = options.memento_config(args, options.checkpoint_model_type(model_dir))
    model, tokenizer = load_model_and_tokenizer(
        model_dir, dtype=args.dtype, device=args.device, attn_implementation=args.attn_implementation
    )
    generator = MementoGenerator(model, tokenizer, config)
    prompt_ids = generator.encode_prompts(prompts)
    sampling = sampling.fit_context([len(ids) for ids in prompt_ids], position_limit(model.config))
    if args.stream and not args.json:
        results: list = []
        for event in generator.stream(prompt_ids, results=results, **sampling.as_kwargs()):
            if len(prompts) == 1:
                print(event.text, end="", flush=True)
        print()
        if len(prompts) > 1:
            for result in results:
                print(result.text, end="\n\n")
    else:
        results = generator.generate(prompt_ids, **sampling.as_kwargs())
    for result in results:
        if args.json:
            print(json.dumps(result_json(result, config)))
        elif not args.stream:
            print(result.text)
        if not args.json:
            print(
                f"[{len(result.token_ids)} tokens, finish: {result.finish_reason}, {len(result.evictions)} evictions, "
                f"peak KV {result.kv_tokens_peak} tokens, final KV {result.kv_trace[-1]} tokens, "
                f"without eviction {len(result.prompt_ids) + len(result.token_ids) - 1}]",
                file=sys.stderr,
            )
    return 0


def result_json(result: Any, config: MementoConfig) -> dict[str, Any]:
    """One `GenerationResult` as the JSON object `--json` prints."""
    return {
        "text": result.text,
        "token_ids": result.token_ids,
        "prompt_tokens": len(result.prompt_ids),
        "finish_reason": result.finish_reason,
        "seed": result.seed,
        "kv_trace": result.kv_trace,
        "kv_tokens_peak": result.kv_tokens_peak,
        "evictions": [
            {"step": e.step, "after_position": e.position, "start": e.span.start, "stop": e.span.stop}
            for e in result.evictions
        ],
        "config": config.to_dict(),
    }

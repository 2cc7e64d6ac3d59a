"""`memento data build` / `memento data stats`: memento training data from chains of thought."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from memento.cli import options, paths

NAME = "data"
HELP = "build memento training data from chains of thought"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `memento data build` and `memento data stats`."""
    from memento.data.build import BuildOptions

    commands = parser.add_subparsers(dest="data_command", required=True, metavar="{build,stats}")
    build = commands.add_parser(
        "build",
        help="split -> score -> segment -> compress (+judge), resumable",
        description="Turn a JSONL of chains of thought (task_id, cot, problem, domain) into memento records. "
        "Re-running the same command resumes: finished traces are skipped, none is lost.",
    )
    build.add_argument("--input", type=Path, required=True, help="JSONL of chains of thought")
    build.add_argument("--output-dir", type=Path, required=True, help="records, failures and progress go here")
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--offline", action="store_true", help="discourse-cue scorer and extractive mementos")
    source.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    build.add_argument("--model", help="model for scoring and compression (with --base-url)")
    build.add_argument("--judge-model", help="model for the judge (default: --model)")
    build.add_argument("--api-key", default=None, help="API key (default: $OPENAI_API_KEY)")
    build.add_argument("--no-judge", action="store_true", help="skip the judge and refinement")
    options.add_options(build, BuildOptions, title="pipeline")
    build.add_argument("--limit", type=int, default=None, help="only the first N traces")
    build.add_argument("--tokenizer", type=Path, default=None, help="local HF tokenizer (default: ~4 chars/token)")
    build.add_argument("--timeout", type=float, default=120.0, help="seconds per LLM request")
    build.add_argument("--max-attempts", type=int, default=5, help="tries per LLM call")
    build.add_argument("--backoff", type=float, default=1.0, help="first retry wait in seconds (doubles)")
    build.set_defaults(run=run_build)
    stats = commands.add_parser("stats", help="blocks, tokens and compression of a built data set")
    stats.add_argument("directory", type=Path)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=run_stats)


def run_build(args: argparse.Namespace) -> int:
    """Run (or resume) the pipeline and print what it did; exit code 1 while any trace has no record."""
    from memento.counting import load_tokenizer
    from memento.data.build import BuildOptions, build
    from memento.data.llm import LLMClient
    from memento.data.split import approximate_tokens
    from memento.data.stages import SlowStages
    from memento.errors import UsageError
    from memento.folder_lock import hold_folder

    build_options = options.from_args(BuildOptions, args)
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit: expected a number of traces >= 1, got {args.limit}")
    paths.existing_file(args.input, "--input")
    paths.output_directory(args.output_dir, "--output-dir")
    client = judge = None
    if not args.offline:
        if not args.model:
            raise UsageError("--base-url needs --model")
        settings = {
            "api_key": args.api_key,
            "timeout": args.timeout,
            "max_attempts": args.max_attempts,
            "backoff": args.backoff,
        }
        client = LLMClient(args.base_url, args.model, **settings)
        judge = None if args.no_judge else LLMClient(args.base_url, args.judge_model or args.model, **settings)
    count_tokens = approximate_tokens
    if args.tokenizer is not None:
        tokenizer = load_tokenizer(paths.tokenizer_directory(args.tokenizer, "--tokenizer"))
        count_tokens = lambda text: len(tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
    with hold_folder(args.output_dir, "--output-dir"):  # a second run into the folder is refused
        summary = build(
            args.input,
            args.output_dir,
            build_options,
            client=client,
            judge=judge,
            count_tokens=count_tokens,
            limit=args.limit,
            progress=sys.stderr.isatty(),
            stages=SlowStages(lambda line: print(f"memento data build: {line}", file=sys.stderr, flush=True)),
        )
    print(summary.report(args.output_dir))
    return summary.exit_code


def run_stats(args: argparse.Namespace) -> int:
    """Print (or `--json`) the statistics of a built data set."""
    from memento.data.build import dataset_stats

    stats = dataset_stats(paths.existing_directory(args.directory, "directory"))
    if args.json:
        print(json.dumps(stats))
        return 0
    ratio = stats["memento_to_block_chars"]
    print(f"traces {stats['traces']}, blocks per trace {stats['blocks_per_trace']:.1f}")
    print(
        f"tokens per block {stats['tokens_per_block']:.0f} (paper ~1,150), per memento "
        f"{stats['tokens_per_memento']:.0f} (paper ~194)"
    )
    if stats["memento_to_block_tokens"] is not None:
        tokens_ratio = stats["memento_to_block_tokens"]
        print(f"memento/block tokens over all blocks: {tokens_ratio:.2f} (paper ~0.17, the inverse of its '~6x')")
    print(
        f"memento/block chars: p10 {ratio['p10']:.2f}, median {ratio['p50']:.2f}, p90 {ratio['p90']:.2f} "
        "(paper medians: math 0.16, code 0.18, science 0.23)"
    )
    for domain, median in stats["memento_to_block_chars_median_by_domain"].items():
        print(f"  {domain}: median {median:.2f}")
    if stats["judge_score_mean"] is not None:
        print(f"judge score mean {stats['judge_score_mean']:.1f}/10")
    return 0

"""`memento data build` / `stats` / `export`: memento training data from chains of thought."""

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

    commands = parser.add_subparsers(dest="data_command", required=True, metavar="{build,stats,export}")
    build = commands.add_parser(
        "build",
        help="split -> score -> segment -> compress (+judge), resumable",
        description="Turn chains of thought into memento records: a JSONL of (task_id, cot, problem, domain), a .json "
        "record or list of them, or the authors' memento traces (their blocks, joined, are the chain of thought). "
        "Re-running the same command resumes: finished traces are skipped, none is lost.",
    )
    build.add_argument(
        "--input",
        type=Path,
        required=True,
        help="JSONL of chains of thought, a .json record or list of them, or the authors' memento trace JSON",
    )
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
    build.add_argument(
        "--tokenizer", type=Path, default=None, help="HF tokenizer dir or hub id (default: ~4 chars/token)"
    )
    build.add_argument("--timeout", type=float, default=120.0, help="seconds per LLM request")
    build.add_argument("--max-attempts", type=int, default=5, help="tries per LLM call")
    build.add_argument("--backoff", type=float, default=1.0, help="first retry wait in seconds (doubles)")
    build.add_argument(
        "--structured-output",
        choices=["auto", "on", "off"],
        default="auto",
        help="send each answer's JSON schema as response_format (auto: until the endpoint refuses it)",
    )
    build.add_argument("--max-tokens", type=int, default=None, help="cap on each LLM answer's tokens")
    build.set_defaults(run=run_build)
    stats = commands.add_parser("stats", help="blocks, tokens and compression of a built data set")
    stats.add_argument("directory", type=Path)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=run_stats)
    export = commands.add_parser(
        "export",
        help="write a built data set in the released OpenMementos schema (parquet)",
        description="Write the records of a `memento data build` folder as OpenMementos rows (problem, response, "
        "domain, source, difficulty; --config full adds sentences, blocks, block_summaries) to a .parquet file "
        "that datasets.load_dataset('parquet', ...) and `memento train --data` read.",
    )
    export.add_argument("directory", type=Path, help="a `memento data build` output folder")
    export.add_argument("--format", choices=["openmementos"], default="openmementos")
    export.add_argument("--output", type=Path, required=True, help="the .parquet file to write")
    export.add_argument("--config", choices=["full", "default"], default="full", help="OpenMementos config")
    export.add_argument("--source", default="memento-data-build", help="the rows' `source` where a record names none")
    export.add_argument(
        "--skip-malformed",
        action="store_true",
        help="write the well-formed records when some are malformed (default: refuse, write nothing)",
    )
    export.set_defaults(run=run_export)


def run_build(args: argparse.Namespace) -> int:
    """Run (or resume) the pipeline and print what it did; exit code 1 while any trace has no record."""
    from memento.counting import load_tokenizer
    from memento.data.build import RECORDS, BuildOptions, build
    from memento.data.llm import LLMClient, StructuredOutput
    from memento.data.split import approximate_tokens
    from memento.data.stages import SlowStages
    from memento.data.stats import dataset_stats, format_stats
    from memento.errors import UsageError
    from memento.folder_lock import hold_folder

    build_options = options.from_args(BuildOptions, args)
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit: expected a number of traces >= 1, got {args.limit}")
    paths.existing_file(args.input, "--input")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise UsageError(f"--max-tokens: expected a number of tokens >= 1, got {args.max_tokens}")
    paths.output_directory(args.output_dir, "--output-dir")
    client = judge = None
    structured = StructuredOutput(args.structured_output)
    if not args.offline:
        if not args.model:
            raise UsageError("--base-url needs --model")
        settings = {
            "api_key": args.api_key,
            "timeout": args.timeout,
            "max_attempts": args.max_attempts,
            "backoff": args.backoff,
            "max_tokens": args.max_tokens,
            "structured": structured,  # one state for both: a refusal is found (and said) once
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
    if client is not None:
        print(f"structured output: {structured.describe()}")
    if summary.processed and (args.output_dir / RECORDS).exists():
        print("\n".join(format_stats(dataset_stats(args.output_dir))))
    return summary.exit_code


def run_stats(args: argparse.Namespace) -> int:
    """Print (or `--json`) the statistics of a built data set."""
    from memento.data.stats import dataset_stats, format_stats

    stats = dataset_stats(paths.existing_directory(args.directory, "directory"))
    print(json.dumps(stats) if args.json else "\n".join(format_stats(stats)))
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Write the folder's records as OpenMementos rows and say how many, where, and what was left out."""
    from memento.data.build import FAILURES, RECORDS
    from memento.data.export import export_openmementos
    from memento.data.stats import unrecorded_failures
    from memento.errors import UsageError

    directory = paths.existing_directory(args.directory, "directory")
    failed = unrecorded_failures(directory)
    if not (directory / RECORDS).is_file():
        if failed:
            first = next(iter(failed.items()))
            raise UsageError(
                f"directory {directory}: no {RECORDS}: all {len(failed)} traces built there failed (reasons in "
                f"{directory / FAILURES}; first, {first[0]}: {first[1]}); rerun memento data build to retry them"
            )
        paths.existing_directory(directory, "directory", holding=RECORDS)
    output = paths.output_file(args.output, "--output", suffixes=("parquet",))
    exported = export_openmementos(
        directory, output, config=args.config, source=args.source, skip_malformed=args.skip_malformed
    )
    print(f"{exported.rows} rows in OpenMementos' {args.config!r} schema -> {output}")
    if exported.skipped:
        print(f"{len(exported.skipped)} malformed records left out (--skip-malformed); first: {exported.skipped[0]}")
    if failed:
        print(f"{len(failed)} traces of this folder failed and have no record (reasons in {directory / FAILURES})")
    return 0

"""`memento eval` (generate, grade, replay KV, summarize; resumable) and `memento eval grade`
(responses generated elsewhere, same graders and KV replay, no model)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from memento.cli import options, paths
from memento.cli.parsing import BooleanOptional
from memento.errors import UsageError

NAME = "eval"
HELP = "evaluate a memento model on a benchmark: accuracy and KV per mode, side by side"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `memento eval` (from `EvalOptions`) and its `grade` subcommand (`GradeOptions`)."""
    from memento.eval.run.backends.prompted import PROMPTED_FLAGS
    from memento.eval.run.options import EvalOptions, GradeOptions
    from memento.prompted.config import PromptedConfig

    parser.description = (
        "Run a benchmark with the paper's protocol in several modes (memento eviction, no eviction, restart, "
        "any --config, a --baseline-model): pass@1 ± stderr, pass@k, maj@k, format adherence, tokens, peak KV "
        "and KV AUC from the offline replay, tok/s. Samples are appended to OUTPUT/samples.jsonl; re-running "
        "the same command resumes. --backend prompted runs memento.prompted's loop (mode prompted) beside one "
        "plain call (mode plain) on any chat endpoint. `memento eval grade` grades responses made elsewhere."
    )
    options.add_options(parser, EvalOptions)
    options.add_options(parser, PromptedConfig, title="prompted backend (--backend prompted)", only=PROMPTED_FLAGS)
    _add_output_flags(parser)
    parser.set_defaults(run=run)
    commands = parser.add_subparsers(dest="eval_command", required=False, metavar="{grade,view}")
    grade = commands.add_parser(
        "grade",
        help="grade a JSONL of responses (id, response[, mode, sample]) with the same graders and KV replay",
        description="Grade responses generated elsewhere (the authors' vLLM, any server) against a benchmark and "
        "replay their KV, with no model: the same summary as `memento eval`.",
    )
    options.add_options(grade, GradeOptions)
    _add_output_flags(grade, progress=False)
    grade.set_defaults(run=run_grade)
    view = commands.add_parser(
        "view",
        help="write one self-contained HTML page of a run, or of several side by side",
        description="Write an offline HTML page of a memento eval (or eval grade) output directory: the summary, "
        "accuracy vs peak KV, every problem with its verdicts, each sample's blocks, mementos and KV sawtooth. "
        "Works on a run still in progress (what is there so far). Several RUN_DIRs (one benchmark; their "
        "problem sets may differ, a problem a run lacks is left blank) go side by side on one page, each "
        "verdict marked with its run (data-run: the folder's name), with a filter for the problems whose "
        "verdict changed between runs; --output is then required.",
    )
    view.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="output directory of memento eval or memento eval grade"
    )
    view.add_argument(
        "--output", default=None, help="the HTML file to write (default RUN_DIR/view.html; required with several runs)"
    )
    view.add_argument("--open", action="store_true", help="open the page in the default browser")
    view.set_defaults(run=run_view)


def _add_output_flags(parser: argparse.ArgumentParser, *, progress: bool = True) -> None:
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object (the last line)")
    if not progress:
        return
    parser.add_argument(
        "--progress",
        action=BooleanOptional,
        default=None,
        help="progress bar with ETA on stderr (default: when stderr is a terminal)",
    )


def _show(summary: dict[str, Any], as_json: bool) -> None:
    from memento.eval.report.console import print_summary

    if as_json:
        print(json.dumps(summary), flush=True)
    else:
        print_summary(summary)


def run(args: argparse.Namespace) -> int:
    """Check the paths, run (or resume) the evaluation, print the table or the JSON summary."""
    from memento.eval.benchmarks.sources import BenchmarkUnavailable
    from memento.eval.evaluate import run_eval
    from memento.eval.run.backends import BackendError
    from memento.eval.run.backends.prompted import PROMPTED_FLAGS, endpoint_settings
    from memento.eval.run.options import EvalOptions
    from memento.eval.run.runner import default_output
    from memento.folder_lock import hold_folder
    from memento.prompted.config import PromptedConfig

    eval_options = options.from_args(EvalOptions, args)
    if eval_options.backend in ("hf", "vllm"):
        eval_options.model = str(paths.model_checkpoint(Path(eval_options.model), "--model"))
        if eval_options.baseline_model is not None:
            baseline = paths.model_checkpoint(Path(eval_options.baseline_model), "--baseline-model")
            eval_options.baseline_model = str(baseline)
    for flag, value in (("--prompt-template", eval_options.prompt_template),):
        if value is not None:
            paths.existing_file(Path(value), flag)
    if eval_options.tokenizer is not None:
        eval_options.tokenizer = str(paths.tokenizer_directory(Path(eval_options.tokenizer), "--tokenizer"))
    if eval_options.output is not None:
        paths.output_directory(Path(eval_options.output), "--output")
    prompted = None
    if eval_options.backend == "prompted":
        if args.prompts is not None:
            paths.existing_file(Path(args.prompts), "--prompts")
        prompted = options.from_args(PromptedConfig, args, only=PROMPTED_FLAGS, **endpoint_settings(eval_options))
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    output = Path(eval_options.output) if eval_options.output is not None else default_output(eval_options)
    try:
        with hold_folder(output, "--output"):  # a second run into the same folder is refused
            command = ["memento", *sys.argv[1:]]
            summary = run_eval(eval_options, progress=progress, prompted=prompted, command=command)
    except BenchmarkUnavailable as error:
        raise UsageError(f"--benchmark: {error}") from None
    except BackendError as error:
        print(f"memento eval: error: {error} (finished samples are kept; re-run to resume)", file=sys.stderr)
        return 1
    _show(summary, args.json)
    return 0


def run_grade(args: argparse.Namespace) -> int:
    """Grade the responses file and print the table or the JSON summary; write files with --output."""
    from memento.eval.benchmarks.sources import BenchmarkUnavailable
    from memento.eval.evaluate import grade_responses
    from memento.eval.report.outputs import write_outputs
    from memento.eval.run.options import GradeOptions
    from memento.eval.run.store import record_invocation, write_samples

    grade_options = options.from_args(GradeOptions, args)
    paths.existing_file(Path(grade_options.responses), "--responses")
    if grade_options.tokenizer is not None:
        grade_options.tokenizer = str(paths.tokenizer_directory(Path(grade_options.tokenizer), "--tokenizer"))
    if grade_options.model_config is not None and not Path(grade_options.model_config).is_file():
        paths.existing_directory(Path(grade_options.model_config), "--model-config", holding="config.json")
    if grade_options.output is not None:
        paths.output_directory(Path(grade_options.output), "--output")
    try:
        summary, records = grade_responses(grade_options)
    except BenchmarkUnavailable as error:
        raise UsageError(f"--benchmark: {error}") from None
    if grade_options.output is not None:
        write_outputs(summary, records, Path(grade_options.output))
        manifest = {
            "benchmark": grade_options.benchmark,
            "choice_seed": grade_options.choice_seed,
            "tokenizer": grade_options.tokenizer,
            "graded_from": str(grade_options.responses),
            "modes": summary["mode_settings"],
        }
        write_samples(grade_options.output, [r for mode in records.values() for r in mode], manifest)
        record_invocation(grade_options.output, ["memento", *sys.argv[1:]])
    _show(summary, args.json)
    return 0


def _page_output(run_dirs: list[Path], output: Path) -> Path:
    """`--output` as a file to write that is none of any run's own files (the page would replace it)."""
    import os

    from memento.eval.report.view_data import run_files

    paths.output_file(output, "--output")
    target = output.resolve()
    for run_dir in run_dirs:
        for own in run_files(run_dir):
            if own.resolve() == target or (own.exists() and output.exists() and os.path.samefile(own, output)):
                default = f" (default {run_dir / 'view.html'})" if len(run_dirs) == 1 else ""
                raise UsageError(
                    f"--output {output}: is the run's own {own.name}; writing the page there would destroy the run "
                    f"{run_dir}, choose another file{default}"
                )
    return output


def run_view(args: argparse.Namespace) -> int:
    """Write the page of the run (or of the runs side by side); print where it is."""
    from memento.eval.report.view import render_page, write_page
    from memento.eval.report.view_data import ViewError, load_run
    from memento.eval.report.view_runs import run_names

    run_dirs = [Path(run_dir) for run_dir in args.run_dirs]
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise UsageError(
                f"RUN_DIR {run_dir}: not a directory; give the output directory of memento eval (or eval grade)"
            )
    if len(run_dirs) > 1 and args.output is None:
        raise UsageError(
            f"--output: required with {len(run_dirs)} RUN_DIRs (the page belongs to none of them), "
            "e.g. --output compare.html"
        )
    output = _page_output(run_dirs, Path(args.output) if args.output else run_dirs[0] / "view.html")
    try:
        names = run_names(run_dirs)
        page = render_page(*(load_run(run_dir) for run_dir in run_dirs), names=names)
    except ViewError as error:
        raise UsageError(f"RUN_DIR {error}") from None
    try:
        path = write_page(page, output)
    except OSError as error:
        raise UsageError(f"--output {output}: cannot write the page ({error.strerror})") from None
    print(path)
    if args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0

"""`memento demo`: the embedded toy model on held-out problems, with eviction, without, and in restart mode."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memento.cli import options, paths

NAME = "demo"
HELP = "the embedded toy model on held-out problems: eviction vs none vs restart"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `memento demo` to its parser (problem counts come from `DemoOptions`)."""
    from memento.toy.demo import DemoOptions

    parser.description = (
        "Solve held-out toy problems with memento eviction, without eviction, and in restart_mode; "
        "print accuracy, peak KV, KV AUC and speed, draw the KV sawtooth, and show one full trace."
    )
    parser.add_argument("--model", type=Path, default=None, help="a toy checkpoint (default: the embedded one)")
    options.add_options(parser, DemoOptions)
    parser.add_argument(
        "--plot", type=Path, default=Path("memento-demo.png"), help="KV sawtooth image (default: memento-demo.png)"
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as one JSON object")
    parser.add_argument("--save-traces", type=Path, default=None, help="write every mode's outputs (for `memento kv`)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check the options and output paths, run the demo, print the report, then draw the plot."""
    from memento.toy.demo import DemoOptions, plot_demo, print_demo, run_demo

    demo_options = options.from_args(DemoOptions, args)
    paths.image_file(args.plot, "--plot")
    if args.model is not None:
        args.model = paths.checkpoint_directory(args.model, "--model")
    if args.save_traces is not None:
        paths.output_directory(args.save_traces, "--save-traces")
    report = run_demo(args.model, demo_options, save_traces=args.save_traces)
    if args.json:
        print(json.dumps(report))
    else:
        print_demo(report)
    plot_demo(report, args.plot)
    if not args.json:
        print(f"KV sawtooth for the example problem written to {args.plot}")
    return 0

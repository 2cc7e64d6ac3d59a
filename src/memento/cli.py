"""The `memento` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memento.config import MementoConfig, default_mask_delimiters
from memento.format import TraceFormatError, read_jsonl


def _add_memento_flags(parser: argparse.ArgumentParser, *, keep_last_n_default: int = 0) -> None:
    """Memento-attention options shared by every command that applies the rule."""
    group = parser.add_argument_group("memento attention")
    group.add_argument(
        "--keep-last-n",
        dest="keep_last_n_blocks",
        type=int,
        default=keep_last_n_default,
        help="completed blocks kept visible (0 = evict each block after its memento, -1 = never evict)",
    )
    group.add_argument(
        "--mask-delimiters",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also evict <|block_start|>/<|block_end|> (default: per model family; Phi-4 yes, Qwen3/Olmo 3 no)",
    )
    group.add_argument("--restart-mode", action="store_true", help="recompute each memento without its block")
    group.add_argument(
        "--keep-last-block-for-answer", action="store_true", help="keep the last block visible to the answer"
    )
    group.add_argument("--max-block-tokens", type=int, default=0, help="force <|block_end|> at this many tokens")
    group.add_argument(
        "--no-require-assistant-section",
        dest="require_assistant_section",
        action="store_false",
        help="also honour memento tokens found in the prompt",
    )


def _config_from_args(args: argparse.Namespace, model_type: str | None) -> MementoConfig:
    mask_delimiters = args.mask_delimiters
    if mask_delimiters is None:
        mask_delimiters = default_mask_delimiters(model_type or "")
    return MementoConfig(
        keep_last_n_blocks=args.keep_last_n_blocks,
        mask_delimiters=mask_delimiters,
        restart_mode=args.restart_mode,
        keep_last_block_for_answer=args.keep_last_block_for_answer,
        max_block_tokens=args.max_block_tokens,
        require_assistant_section=args.require_assistant_section,
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memento", description="Memento: reasoning in blocks with KV eviction.")
    commands = parser.add_subparsers(dest="command", required=True)

    kv = commands.add_parser(
        "kv",
        help="simulate the KV cache of memento traces, vanilla vs memento",
        description="Replay traces through the memento attention rule and report peak KV, AUC and compression.",
    )
    kv.add_argument("traces", nargs="+", type=Path, help="trace files: authors' .json, .jsonl, or memento text")
    source = kv.add_mutually_exclusive_group()
    source.add_argument(
        "--geometry", default=None, help="preset: qwen3-8b, qwen3-32b, phi-4-reasoning, olmo-3-7b-think"
    )
    source.add_argument("--model-config", type=Path, default=None, help="local checkpoint dir or config.json")
    kv.add_argument("--tokenizer", type=Path, default=None, help="local Hugging Face tokenizer (default: approximate)")
    kv.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    kv.add_argument("--plot", type=Path, default=None, help="write KV-vs-token curves (vanilla and memento) to PNG")
    _add_memento_flags(kv)
    kv.set_defaults(handler=_run_kv)

    generate = commands.add_parser(
        "generate",
        help="generate with memento attention and real KV eviction",
        description="Generate from a memento checkpoint; blocks leave the KV cache as soon as their memento closes.",
    )
    generate.add_argument(
        "--model",
        type=Path,
        default=None,
        help="local Hugging Face checkpoint directory (default: the embedded toy model)",
    )
    prompt = generate.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="user message (the chat template is applied)")
    prompt.add_argument(
        "--file", type=Path, help="text file holding the prompt, or JSONL with 'prompt'/'problem' per line"
    )
    generate.add_argument("--max-new-tokens", type=int, default=1024)
    generate.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    generate.add_argument("--top-p", type=float, default=None)
    generate.add_argument("--top-k", type=int, default=None)
    generate.add_argument("--min-p", type=float, default=None)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    generate.add_argument("--stream", action="store_true", help="print tokens as they come")
    generate.add_argument("--json", action="store_true", help="print one JSON object per prompt")
    generate.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    generate.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    generate.add_argument("--attn-implementation", default="sdpa", choices=["sdpa", "eager"])
    _add_memento_flags(generate)
    generate.set_defaults(handler=_run_generate)

    train = commands.add_parser(
        "train",
        help="two-stage SFT: full causal attention, then memento attention",
        description="Add the memento tokens to a local checkpoint and fine-tune it on memento traces "
        "(authors' JSON, data-pipeline JSONL, or memento text). Defaults are the paper's.",
    )
    train.add_argument("--model", type=Path, required=True, help="local Hugging Face checkpoint directory")
    train.add_argument("--data", type=Path, nargs="+", required=True, help="training traces")
    train.add_argument("--eval-data", type=Path, nargs="+", default=None, help="eval traces (keeps the best epoch)")
    train.add_argument("--output", type=Path, required=True, help="output directory")
    train.add_argument("--stage", choices=["full", "memento", "both"], default="both")
    train.add_argument(
        "--mask-delimiters",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="stage 2 masks the block delimiters too (default: per model family)",
    )
    train.add_argument("--keep-last-n", dest="keep_last_n_blocks", type=int, default=0)
    train.add_argument(
        "--attention",
        choices=["dense", "block-sparse"],
        default="dense",
        help="dense L x L mask (sdpa) or flex_attention block-sparse mask",
    )
    train.add_argument("--learning-rate", type=float, default=8e-5)
    train.add_argument("--epochs", type=float, default=5.0)
    train.add_argument("--memento-epochs", type=float, default=None, help="stage 2 epochs (default: --epochs)")
    train.add_argument(
        "--full-attention-fraction",
        type=float,
        default=0.0,
        help="share of stage-2 examples trained with plain causal attention (keeps the model usable without eviction)",
    )
    train.add_argument("--batch-size", type=int, default=1)
    train.add_argument("--gradient-accumulation-steps", type=int, default=1)
    train.add_argument("--warmup-ratio", type=float, default=0.05)
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--max-grad-norm", type=float, default=1.0)
    train.add_argument("--max-length", type=int, default=32768)
    train.add_argument("--overflow", choices=["truncate", "drop"], default="truncate")
    train.add_argument("--bf16", choices=["auto", "yes", "no"], default="auto")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--logging-steps", type=int, default=10)
    train.add_argument("--gradient-checkpointing", action="store_true")
    train.set_defaults(handler=_run_train)

    serve = commands.add_parser(
        "serve",
        help="serve a memento checkpoint over the OpenAI API (vLLM backend)",
        description="Start vLLM's OpenAI-compatible server with memento block masking. Arguments after `--` go "
        "to vLLM unchanged.",
    )
    serve.add_argument("--backend", choices=["vllm"], default="vllm")
    serve.add_argument("--model", type=Path, required=True, help="local Hugging Face checkpoint directory")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--dtype", default="auto")
    serve.add_argument("--max-model-len", type=int, default=None)
    serve.add_argument("--num-blocks", type=int, default=None, help="fix the KV pool at this many blocks")
    serve.add_argument("--block-size", type=int, default=None, help="tokens per KV block (CPU: a multiple of 32)")
    serve.add_argument("--memory-fraction", type=float, default=0.4, help="vLLM's --gpu-memory-utilization")
    serve.add_argument(
        "--block-masking-config",
        default=None,
        help="the authors' JSON (enable, keep_last_n_blocks, mask_delimiters, ...); overrides the flags below",
    )
    _add_memento_flags(serve)
    serve.set_defaults(handler=_run_serve)

    demo = commands.add_parser(
        "demo",
        help="the embedded toy model on held-out problems: eviction vs none vs restart",
        description="Solve held-out toy problems with memento eviction, without eviction, and in restart_mode; "
        "print accuracy, peak KV, KV AUC and speed, draw the KV sawtooth, and show one full trace.",
    )
    demo.add_argument("--model", type=Path, default=None, help="a toy checkpoint (default: the embedded one)")
    demo.add_argument("--problems", type=int, default=300)
    demo.add_argument("--batch-size", type=int, default=100)
    demo.add_argument("--seed", type=int, default=None, help="held-out problem seed")
    demo.add_argument("--plot", type=Path, default=Path("memento-demo.png"))
    demo.add_argument("--json", action="store_true", help="print the numbers as one JSON object")
    demo.add_argument("--save-traces", type=Path, default=None, help="write every mode's outputs (for `memento kv`)")
    demo.set_defaults(handler=_run_demo)

    toy = commands.add_parser("toy", help="the synthetic task and its tiny model")
    toy_commands = toy.add_subparsers(dest="toy_command", required=True)
    toy_train = toy_commands.add_parser(
        "train",
        help="train the toy model through `memento train --stage both` (about 18 minutes on 2 CPU cores)",
    )
    toy_train.add_argument("--output", type=Path, default=Path("runs/toy"))
    toy_train.add_argument("--examples", type=int, default=None, help="training problems (default 2400)")
    toy_train.add_argument("--epochs", type=float, default=None, help="stage 1 (full attention) epochs (default 8)")
    toy_train.add_argument("--memento-epochs", type=float, default=None, help="stage 2 epochs (default 2)")
    toy_train.add_argument(
        "--full-attention-fraction", type=float, default=None, help="stage 2 share of plain causal examples (0.3)"
    )
    toy_train.add_argument("--learning-rate", type=float, default=None, help="default 3e-3")
    toy_train.add_argument("--seed", type=int, default=0)
    toy_train.add_argument("--install", action="store_true", help="replace the embedded default model")
    toy_train.set_defaults(handler=_run_toy_train)

    data = commands.add_parser("data", help="build memento training data from chains of thought")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    build = data_commands.add_parser(
        "build",
        help="split -> score -> segment -> compress (+judge), resumable",
        description="Turn a JSONL of chains of thought (task_id, cot, problem, domain) into memento records. "
        "Re-running the same command resumes: finished traces are skipped, none is lost.",
    )
    build.add_argument("--input", type=Path, required=True)
    build.add_argument("--output-dir", type=Path, required=True)
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--offline", action="store_true", help="discourse-cue scorer and extractive mementos")
    source.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    build.add_argument("--model", help="model for scoring and compression (with --base-url)")
    build.add_argument("--judge-model", help="model for the judge (default: --model)")
    build.add_argument("--api-key", default=None, help="API key (default: $OPENAI_API_KEY)")
    build.add_argument("--no-judge", action="store_true", help="skip the judge and refinement")
    build.add_argument("--workers", type=int, default=4)
    build.add_argument("--two-pass", action="store_true", help="average scores over windows of 16 and 11")
    build.add_argument("--min-block-tokens", type=int, default=200)
    build.add_argument("--variance-penalty", type=float, default=0.5)
    build.add_argument("--max-iterations", type=int, default=2, help="refinement rounds below the threshold")
    build.add_argument("--score-threshold", type=float, default=8.0)
    build.add_argument("--limit", type=int, default=None, help="only the first N traces")
    build.add_argument("--tokenizer", type=Path, default=None, help="local HF tokenizer (default: ~4 chars/token)")
    build.add_argument("--timeout", type=float, default=120.0, help="seconds per LLM request")
    build.add_argument("--max-attempts", type=int, default=5, help="tries per LLM call")
    build.add_argument("--backoff", type=float, default=1.0, help="first retry wait in seconds (doubles)")
    build.set_defaults(handler=_run_data_build)
    stats = data_commands.add_parser("stats", help="blocks, tokens and compression of a built data set")
    stats.add_argument("directory", type=Path)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(handler=_run_data_stats)
    return parser


def _run_kv(args: argparse.Namespace) -> int:
    from memento.counting import load_tokenizer
    from memento.kv import KVGeometry
    from memento.kv_report import compare_traces, plot_comparisons, print_comparisons

    if args.model_config is not None:
        geometry = KVGeometry.from_config(args.model_config)
        model_type = geometry.name
    else:
        geometry = KVGeometry.preset(args.geometry or "qwen3-8b")
        model_type = geometry.name.split("-")[0]
    config = _config_from_args(args, model_type)
    tokenizer = load_tokenizer(args.tokenizer)
    comparisons = compare_traces(args.traces, tokenizer, geometry, config)
    if args.json:
        print(json.dumps(comparisons.to_dict()))
    else:
        print_comparisons(comparisons)
    if args.plot is not None:
        plot_comparisons(comparisons, args.plot)
        if not args.json:
            print(f"plot written to {args.plot}")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from memento.training import TrainOptions, train

    options = TrainOptions(
        learning_rate=args.learning_rate,
        epochs=args.epochs,
        memento_epochs=args.memento_epochs,
        full_attention_fraction=args.full_attention_fraction,
        batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm,
        max_length=args.max_length,
        overflow=args.overflow,
        bf16=args.bf16,
        seed=args.seed,
        attention=args.attention,
        mask_delimiters=args.mask_delimiters,
        keep_last_n_blocks=args.keep_last_n_blocks,
        logging_steps=args.logging_steps,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    final = train(args.model, args.data, args.output, stage=args.stage, options=options, eval_data=args.eval_data)
    print(f"model and tokenizer saved to {final}")
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    from memento.vllm.serve import serve, server_command

    if args.block_masking_config is not None:
        config = MementoConfig.from_json(args.block_masking_config)
    else:
        config_file = args.model / "config.json"
        model_type = json.loads(config_file.read_text()).get("model_type") if config_file.is_file() else None
        config = _config_from_args(args, model_type)
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
        extra=args.vllm_args,
    )
    serve(argv, environment)
    return 0  # not reached: serve() replaces this process


def _run_demo(args: argparse.Namespace) -> int:
    from memento.toy.demo import plot_demo, print_demo, run_demo
    from memento.toy.train import HELD_OUT_SEED

    report = run_demo(
        args.model,
        problems=args.problems,
        batch_size=args.batch_size,
        seed=HELD_OUT_SEED if args.seed is None else args.seed,
        save_traces=args.save_traces,
    )
    plot_demo(report, args.plot)
    if args.json:
        print(json.dumps(report))
    else:
        print_demo(report)
        print(f"KV sawtooth for the example problem written to {args.plot}")
    return 0


def _run_toy_train(args: argparse.Namespace) -> int:
    from memento.toy.train import train_toy

    names = ("examples", "epochs", "memento_epochs", "full_attention_fraction", "learning_rate")
    overrides = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    final = train_toy(args.output, seed=args.seed, install=args.install, **overrides)
    print(f"toy model trained into {final}" + (" and installed as the embedded default" if args.install else ""))
    return 0


def _run_data_build(args: argparse.Namespace) -> int:
    from memento.counting import load_tokenizer
    from memento.data.build import BuildOptions, build
    from memento.data.llm import LLMClient
    from memento.data.split import approximate_tokens

    options = BuildOptions(
        min_block_tokens=args.min_block_tokens,
        variance_penalty=args.variance_penalty,
        two_pass=args.two_pass,
        max_iterations=args.max_iterations,
        score_threshold=args.score_threshold,
        workers=args.workers,
    )
    client = judge = None
    if not args.offline:
        if not args.model:
            raise ValueError("--base-url needs --model")
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
        tokenizer = load_tokenizer(args.tokenizer)
        count_tokens = lambda text: len(tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
    summary = build(
        args.input,
        args.output_dir,
        options,
        client=client,
        judge=judge,
        count_tokens=count_tokens,
        limit=args.limit,
        progress=sys.stderr.isatty(),
    )
    print(
        f"{summary.processed} traces processed ({summary.failed} failed, see failures.jsonl), "
        f"{summary.skipped} already done; {summary.usage.calls} LLM calls, "
        f"{summary.usage.prompt_tokens + summary.usage.completion_tokens} tokens -> {args.output_dir}"
    )
    return 0


def _run_data_stats(args: argparse.Namespace) -> int:
    from memento.data.build import dataset_stats

    stats = dataset_stats(args.directory)
    if args.json:
        print(json.dumps(stats))
        return 0
    ratio = stats["compression_ratio"]
    print(f"traces {stats['traces']}, blocks per trace {stats['blocks_per_trace']:.1f}")
    print(
        f"tokens per block {stats['tokens_per_block']:.0f} (paper ~1,150), per memento "
        f"{stats['tokens_per_memento']:.0f} (paper ~194), trace compression {stats['trace_compression']:.1f}x"
    )
    print(
        f"memento/block chars: p10 {ratio['p10']:.2f}, median {ratio['p50']:.2f}, p90 {ratio['p90']:.2f} "
        "(paper medians: math 0.16, code 0.18, science 0.23)"
    )
    for domain, median in stats["median_ratio_by_domain"].items():
        print(f"  {domain}: median {median:.2f}")
    if stats["judge_score_mean"] is not None:
        print(f"judge score mean {stats['judge_score_mean']:.1f}/10")
    return 0


def _read_prompts(args: argparse.Namespace) -> list[str]:
    if args.prompt is not None:
        return [args.prompt]
    if args.file.suffix != ".jsonl":
        return [args.file.read_text(encoding="utf-8")]
    prompts = []
    for number, record in read_jsonl(args.file):
        value = record.get("prompt", record.get("problem")) if isinstance(record, dict) else None
        if not isinstance(value, str):
            raise ValueError(f"{args.file}:{number}: expected an object with a string 'prompt' or 'problem'")
        prompts.append(value)
    return prompts


def _run_generate(args: argparse.Namespace) -> int:
    from memento.inference import MementoGenerator
    from memento.inference.loading import load_model_and_tokenizer
    from memento.toy.train import CHECKPOINT

    prompts = _read_prompts(args)
    model, tokenizer = load_model_and_tokenizer(
        args.model or CHECKPOINT, dtype=args.dtype, device=args.device, attn_implementation=args.attn_implementation
    )
    config = _config_from_args(args, model.config.model_type)
    generator = MementoGenerator(model, tokenizer, config)
    options = {
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "min_p": args.min_p,
        "seed": args.seed,
        "stop": args.stop,
    }
    if args.stream and not args.json:
        results: list = []
        for event in generator.stream(prompts, results=results, **options):
            if len(prompts) == 1:
                print(event.text, end="", flush=True)
        print()
        if len(prompts) > 1:
            for result in results:
                print(result.text, end="\n\n")
    else:
        results = generator.generate(prompts, **options)
    for result in results:
        if args.json:
            print(json.dumps(_result_json(result, config)))
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


def _result_json(result: Any, config: MementoConfig) -> dict[str, Any]:
    return {
        "text": result.text,
        "token_ids": result.token_ids,
        "prompt_tokens": len(result.prompt_ids),
        "finish_reason": result.finish_reason,
        "kv_trace": result.kv_trace,
        "kv_tokens_peak": result.kv_tokens_peak,
        "evictions": [
            {"step": e.step, "after_position": e.position, "start": e.span.start, "stop": e.span.stop}
            for e in result.evictions
        ],
        "config": config.to_dict(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `memento` console command."""
    parser = _build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:  # `memento serve ... -- --vllm-flag`: the rest goes to vLLM unchanged
        index = argv.index("--")
        argv, passthrough = argv[:index], argv[index + 1 :]
    args = parser.parse_args(argv)
    args.vllm_args = passthrough
    try:
        return int(args.handler(args) or 0)
    except (TraceFormatError, ValueError, FileNotFoundError) as error:
        print(f"memento {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

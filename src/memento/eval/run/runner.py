"""`generate_run`: every (mode, problem, sample) the output directory lacks is generated, graded,
replayed for KV and appended; the `FinishedRun` it returns is what `report.outputs` summarizes.

Work is cut into fixed batches (problem-major, samples of a problem together) per mode, and the
modes of one model take turns batch by batch, so they share the machine's conditions. A batch
depends only on the plan, never on what a killed run had finished: a resumed run generates the
same batches (less the samples already stored), each sample with its own seed. The prompted
backend has its own loop (`prompted_run`) and ends in the same `FinishedRun`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memento.config import default_mask_delimiters
from memento.eval.benchmarks.problems import Benchmark
from memento.eval.benchmarks.prompts import PromptTemplate, build_prompt, load_template
from memento.eval.benchmarks.sources import load_benchmark
from memento.eval.run.backends.base import Backend
from memento.eval.run.modes import Mode, resolve_modes
from memento.eval.run.options import EvalOptions
from memento.eval.run.records import WorkItem, build_records
from memento.eval.run.replay import KVReplay, resolve_geometry
from memento.eval.run.sampling import sample_seed
from memento.eval.run.store import SampleKey, SampleStore, check_manifest, record_invocation
from memento.kv import KVGeometry


@dataclass
class FinishedRun:
    """A run's samples, ready to summarize: the `wanted` keys of `store` (a rerun with a smaller
    --limit leaves others out), the replay's geometry and whether its token counts are approximate;
    `context` adds top-level keys to the summary."""

    options: EvalOptions
    benchmark: Benchmark
    store: SampleStore
    modes: list[Mode]
    wanted: set[SampleKey]
    kv_geometry: KVGeometry | None
    approximate_tokens: bool
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelPlan:
    """The modes that run one model, and the replay (tokenizer + geometry) of its responses."""

    model: str
    modes: list[Mode]
    replay: KVReplay
    batches: dict[str, list[list[WorkItem]]] = field(default_factory=dict)


def default_output(options: EvalOptions) -> Path:
    """runs/eval/MODEL-BENCHMARK (names only, so the same command finds its run again)."""
    model = Path(str(options.model).rstrip("/")).name or "model"
    benchmark = Path(options.benchmark).name.split(".")[0]
    return Path("runs") / "eval" / f"{model}-{benchmark}"


def _local_config(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    candidate = Path(path)
    config = candidate if candidate.is_file() else candidate / "config.json"
    return json.loads(config.read_text(encoding="utf-8")) if config.is_file() else None


def resolve_mask_delimiters(options: EvalOptions) -> bool:
    """--mask-delimiters, else the model family's setting from the local config."""
    if options.mask_delimiters is not None:
        return options.mask_delimiters
    config = _local_config(options.model_config) or _local_config(options.model)
    if config is None:
        raise ValueError(
            f"{options.model} is not a local checkpoint: pass --mask-delimiters or --no-mask-delimiters "
            "(how the model was trained), or --model-config"
        )
    return default_mask_delimiters(str(config.get("model_type", "")))


def _replay_for(options: EvalOptions, model: str, main: bool) -> KVReplay:
    local = (Path(model) / "config.json").is_file()
    if main:
        tokenizer = options.tokenizer or (model if local else None)
        geometry = resolve_geometry(model_config=options.model_config, preset=options.geometry, model=model)
        return KVReplay.load(tokenizer, geometry)
    if not local:
        raise ValueError(
            f"--baseline-model {model}: give a local checkpoint path (its tokenizer and config give the KV)"
        )
    return KVReplay.load(model, resolve_geometry(model=model))


def plan_batches(
    benchmark: Benchmark, samples: int, run_seed: int, batch_size: int, template: PromptTemplate | None
) -> list[list[WorkItem]]:
    """Every sample of every problem, in fixed batches of `batch_size`."""
    items = []
    for problem in benchmark:
        prompt = build_prompt(problem, template)
        items += [
            WorkItem(problem, index, sample_seed(run_seed, problem.id, index), prompt) for index in range(samples)
        ]
    return [items[start : start + batch_size] for start in range(0, len(items), batch_size)]


def make_backend(options: EvalOptions, model: str, *, memento: bool) -> Backend:
    """The backend of `options` for `model` (loaded now)."""
    if options.backend == "hf":
        from memento.eval.run.backends.hf import HFBackend

        return HFBackend(model, dtype=options.dtype, device=options.device)
    if options.backend == "vllm":
        from memento.eval.run.backends.vllm_offline import VLLMBackend

        return VLLMBackend(model, memento_tokens=memento, dtype=options.dtype, engine_arguments=options.vllm_arguments)
    from memento.eval.run.backends.openai_api import OpenAIBackend

    base_url = options.base_url if memento else (options.baseline_base_url or options.base_url)
    return OpenAIBackend(
        model,
        base_url=base_url,
        api_key=options.api_key,
        concurrency=options.concurrency,
        timeout=options.request_timeout,
        memento=memento,
    )


@contextmanager
def progress_bar(total: int, enabled: bool) -> Iterator[Callable[[str, int], None]]:
    """A rich progress bar with ETA on stderr; yields advance(description, samples)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("samples"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), disable=not enabled or total == 0) as progress:
        task = progress.add_task("generating", total=total)
        yield lambda description, count: progress.update(task, advance=count, description=description)


def generate_run(
    options: EvalOptions,
    *,
    progress: bool = True,
    make: Callable[..., Backend] = make_backend,
    command: Sequence[str] | None = None,
) -> FinishedRun:
    """Run (or resume) the generation of `options` (any backend but prompted) into its output directory.

    `make(options, model, memento=...)` builds a backend (tests pass their own). `command` is appended
    to invocations.jsonl once the manifest is accepted.
    """
    benchmark = load_benchmark(
        options.benchmark, options.limit, choice_seed=options.choice_seed, use_hub=not options.offline
    )
    template = load_template(options.prompt_template) if options.prompt_template else None
    mask_delimiters = resolve_mask_delimiters(options)
    modes = resolve_modes(
        options.mode_names, mask_delimiters, extra=options.config, baseline_model=options.baseline_model
    )
    output = Path(options.output) if options.output else default_output(options)
    store = SampleStore(output)
    check_manifest(output, run_manifest(options, benchmark, modes, template))
    if command is not None:
        record_invocation(output, list(command))

    batches = plan_batches(benchmark, options.samples, options.seed, options.batch_size, template)
    plans: list[ModelPlan] = []
    for model in dict.fromkeys(mode.model or options.model for mode in modes):
        own = [mode for mode in modes if (mode.model or options.model) == model]
        plan = ModelPlan(model, own, _replay_for(options, model, main=model == options.model))
        for mode in own:
            plan.batches[mode.name] = [
                [item for item in batch if (mode.name, item.problem.id, item.sample) not in store] for batch in batches
            ]
        plans.append(plan)
    pending = sum(len(batch) for plan in plans for mode_batches in plan.batches.values() for batch in mode_batches)

    with progress_bar(pending, progress) as advance:
        for plan in plans:
            if not any(batch for mode_batches in plan.batches.values() for batch in mode_batches):
                continue
            backend = make(options, plan.model, memento=any(mode.config is not None for mode in plan.modes))
            try:
                for index in range(len(batches)):
                    for mode in plan.modes:
                        items = plan.batches[mode.name][index]
                        if not items:
                            continue
                        advance(f"{mode.name} batch {index + 1}/{len(batches)}", 0)
                        samples = backend.generate(
                            [item.prompt for item in items], options.sampling, mode.config, [i.seed for i in items]
                        )
                        records = build_records(mode, items, samples, plan.replay, workers=options.grade_workers)
                        store.append(records)
                        advance(f"{mode.name} batch {index + 1}/{len(batches)}", len(items))
            finally:
                backend.close()

    wanted = {(mode.name, item.problem.id, item.sample) for mode in modes for batch in batches for item in batch}
    main_replay = plans[0].replay
    return FinishedRun(
        options,
        benchmark,
        store,
        modes,
        wanted,
        kv_geometry=main_replay.geometry,
        approximate_tokens=main_replay.approximate,
    )


def run_manifest(
    options: EvalOptions, benchmark: Benchmark, modes: list[Mode], template: PromptTemplate | None
) -> dict[str, Any]:
    """What must not change when a run resumes (samples and limit may grow)."""
    return {
        "model": options.model,
        "benchmark": options.benchmark,
        "benchmark_source": benchmark.source,
        "backend": options.backend,
        "sampling": dataclasses.asdict(options.sampling),
        "seed": options.seed,
        "choice_seed": options.choice_seed,
        "prompt_template": None if template is None else template.text,
        "modes": {mode.name: mode.describe() for mode in modes},
    }

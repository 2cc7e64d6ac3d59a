"""`memento eval --backend prompted`: every (mode, problem, sample) the output directory lacks is solved
at the endpoint (`PromptedBackend`), graded, and appended as soon as it finishes; then the run is
summarized like any other (a `FinishedRun`).

Samples run `--concurrency` at a time, problem-major with the modes alternating, so prompted and
plain share the endpoint's conditions. A sample whose endpoint failed for good is not written (a
rerun solves it); the others go on, and the run then ends with one line naming the first failure.
Seeds are not sent (the chat protocol's `seed` is a hint few servers keep), so records carry none.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path

from memento.eval.benchmarks.prompts import build_prompt, load_template
from memento.eval.benchmarks.sources import load_benchmark
from memento.eval.run.backends.base import BackendError, Sample
from memento.eval.run.backends.prompted import PromptedBackend, solver_config
from memento.eval.run.modes import Mode, prompted_modes
from memento.eval.run.options import EvalOptions
from memento.eval.run.records import WorkItem, build_records
from memento.eval.run.replay import KVReplay, resolve_geometry
from memento.eval.run.runner import FinishedRun, default_output, progress_bar, run_manifest
from memento.eval.run.store import SampleStore, check_manifest, record_invocation
from memento.kv import KVGeometry
from memento.prompted import PromptedConfig


def kv_geometry(options: EvalOptions) -> KVGeometry | None:
    """--geometry or --model-config (or a local checkpoint as --model) when given: peak KV in bytes too."""
    if (
        options.geometry is None
        and options.model_config is None
        and not (Path(options.model) / "config.json").is_file()
    ):
        return None
    return resolve_geometry(model_config=options.model_config, preset=options.geometry, model=options.model)


def generate_prompted_run(
    options: EvalOptions,
    config: PromptedConfig | None = None,
    *,
    progress: bool = True,
    command: Sequence[str] | None = None,
) -> FinishedRun:
    """Run (or resume) a prompted-backend evaluation into its output directory.

    `config` is the solver (default: `solver_config(options)`). Raises `BackendError` after the run
    when some samples failed at the endpoint (the finished ones are kept). `command` is appended to
    invocations.jsonl once the manifest is accepted.
    """
    benchmark = load_benchmark(
        options.benchmark, options.limit, choice_seed=options.choice_seed, use_hub=not options.offline
    )
    template = load_template(options.prompt_template) if options.prompt_template else None
    modes = prompted_modes(options.mode_names)
    backend = PromptedBackend(config or solver_config(options))
    geometry = kv_geometry(options)
    store = SampleStore(Path(options.output) if options.output else default_output(options))
    check_manifest(
        store.directory, {**run_manifest(options, benchmark, modes, template), "prompted": backend.settings()}
    )
    if command is not None:
        record_invocation(store.directory, list(command))
    items = [
        WorkItem(problem, index, None, build_prompt(problem, template))
        for problem in benchmark
        for index in range(options.samples)
    ]
    wanted = {(mode.name, item.problem.id, item.sample) for mode in modes for item in items}
    work = [(mode, item) for item in items for mode in modes if (mode.name, item.problem.id, item.sample) not in store]
    replay = None if geometry is None else KVReplay.load(None, geometry)
    failures: list[str] = []
    with progress_bar(len(work), progress) as advance, ThreadPoolExecutor(max_workers=options.concurrency) as pool:
        futures: dict[Future[Sample], tuple[Mode, WorkItem]] = {
            pool.submit(backend.solve, mode.name, item.prompt): (mode, item) for mode, item in work
        }
        for future in as_completed(futures):
            mode, item = futures[future]
            try:
                sample = future.result()
            except BackendError as error:
                failures.append(f"{mode.name} {item.problem.id} sample {item.sample}: {error}")
            else:
                store.append(build_records(mode, [item], [sample], replay, workers=options.grade_workers))
            advance(mode.name, 1)
    if failures:
        raise BackendError(f"{len(failures)} of {len(work)} samples failed at the endpoint; first: {failures[0]}")
    approximate = any(record.get("usage_approximate") for key, record in store.records.items() if key in wanted)
    settings = {key: value for key, value in backend.settings().items() if key != "prompts"}
    return FinishedRun(
        options,
        benchmark,
        store,
        modes,
        wanted,
        kv_geometry=geometry,
        approximate_tokens=approximate,
        context={"prompted": settings},
    )

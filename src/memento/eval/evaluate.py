"""The two entry points: `run_eval` (`memento eval`: generate, then summarize and plot) and
`grade_responses` (`memento eval grade`: grade a responses file, then summarize)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from memento.eval.report.outputs import summarize_run
from memento.eval.report.summary import summarize
from memento.eval.run.backends.base import Backend
from memento.eval.run.options import EvalOptions, GradeOptions
from memento.eval.run.responses import grade_records
from memento.eval.run.runner import generate_run, make_backend

if TYPE_CHECKING:
    from memento.prompted import PromptedConfig


def run_eval(
    options: EvalOptions,
    *,
    progress: bool = True,
    make: Callable[..., Backend] = make_backend,
    prompted: PromptedConfig | None = None,
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the evaluation of `options`; returns the summary also written to summary.json.

    `make(options, model, memento=...)` builds a backend (tests pass their own). The prompted
    backend runs `run.prompted_run` with the solver `prompted` (default: `options`' endpoint and
    `PromptedConfig`'s budgets). `command` goes to invocations.jsonl once the run has started (its
    benchmark, modes and manifest accepted): a start that fails leaves no line.
    """
    if options.backend == "prompted":
        from memento.eval.run.prompted_run import generate_prompted_run

        return summarize_run(generate_prompted_run(options, prompted, progress=progress, command=command))
    return summarize_run(generate_run(options, progress=progress, make=make, command=command))


def grade_responses(options: GradeOptions) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """(summary, records by mode) of the responses file of `options`."""
    graded = grade_records(options)
    summary = summarize(
        graded.records_by_mode,
        graded.benchmark,
        responses=str(options.responses),
        samples_per_problem=graded.samples_per_problem,
        kv_geometry={"name": graded.kv_geometry.name, "bytes_per_token": graded.kv_geometry.bytes_per_token},
        approximate_tokens=graded.approximate_tokens,
        mode_settings=graded.mode_settings,
    )
    return summary, graded.records_by_mode

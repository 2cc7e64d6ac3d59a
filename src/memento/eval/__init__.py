"""Evaluation: benchmarks, prompts, graders, a code sandbox and the paper's metrics.

Four groups, each importing only the groups before it (benchmarks < grading < run < report):

* `benchmarks` — what is asked: `problems` (Problem, Benchmark), `sources` (load_benchmark), `rows` /
  `tables` (native and local schemas), `prompts`.
* `grading` — how an answer is judged: `answers` (extraction), `equivalence` / `verify_pool`
  (math-verify under a deadline), `graders`, `sandbox` / `sandbox_guard` / `code_tests` /
  `case_runner` (running code solutions), `metrics` (pass@k, maj@k, format adherence).
* `run` — producing samples: `options` (EvalOptions, GradeOptions), `sampling` (the paper's defaults,
  per-sample seeds), `modes`, `backends` (hf, vllm, openai, prompted), `replay` (the offline KV
  replay), `store` (resumable samples.jsonl), `records`, `runner` / `prompted_run` (generate a run),
  `responses` (grade a responses file into records).
* `report` — what a person reads: `summary`, `outputs` (summary.json and plots of a run), `plots`,
  `console` (the printed table).

`evaluate` ties them together: `run_eval` (`memento eval`) and `grade_responses` (`memento eval grade`).
The public names below load their module on first use, so ``import memento.eval`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memento.lazy import lazy_exports

_EXPORTS = {
    "Benchmark": "benchmarks.problems",
    "Problem": "benchmarks.problems",
    "TestCase": "benchmarks.problems",
    "BenchmarkUnavailable": "benchmarks.sources",
    "BENCHMARK_NAMES": "benchmarks.sources",
    "load_benchmark": "benchmarks.sources",
    "BenchmarkFormatError": "benchmarks.rows",
    "PromptTemplate": "benchmarks.prompts",
    "build_prompt": "benchmarks.prompts",
    "chat_messages": "benchmarks.prompts",
    "load_template": "benchmarks.prompts",
    "Grade": "grading.graders",
    "answer_classes": "grading.graders",
    "grade": "grading.graders",
    "grade_choice": "grading.graders",
    "grade_code": "grading.graders",
    "grade_many": "grading.graders",
    "grade_math": "grading.graders",
    "math_equivalent": "grading.graders",
    "Program": "grading.sandbox",
    "SandboxLimits": "grading.sandbox",
    "SandboxResult": "grading.sandbox",
    "run_many": "grading.sandbox",
    "run_program": "grading.sandbox",
    "accuracy_summary": "grading.metrics",
    "maj_at_k": "grading.metrics",
    "mean_pass_at_k": "grading.metrics",
    "pass_at_1": "grading.metrics",
    "pass_at_k": "grading.metrics",
    "response_summary": "grading.metrics",
    "well_formed": "grading.metrics",
    "EvalOptions": "run.options",
    "GradeOptions": "run.options",
    "sample_seed": "run.sampling",
    "Mode": "run.modes",
    "summarize": "report.summary",
    "run_eval": "evaluate",
    "grade_responses": "evaluate",
}

__all__ = [
    "BENCHMARK_NAMES",
    "Benchmark",
    "BenchmarkFormatError",
    "BenchmarkUnavailable",
    "EvalOptions",
    "Grade",
    "GradeOptions",
    "Mode",
    "Problem",
    "Program",
    "PromptTemplate",
    "SandboxLimits",
    "SandboxResult",
    "TestCase",
    "accuracy_summary",
    "answer_classes",
    "build_prompt",
    "chat_messages",
    "grade",
    "grade_choice",
    "grade_code",
    "grade_many",
    "grade_math",
    "grade_responses",
    "load_benchmark",
    "load_template",
    "maj_at_k",
    "math_equivalent",
    "mean_pass_at_k",
    "pass_at_1",
    "pass_at_k",
    "response_summary",
    "run_eval",
    "run_many",
    "run_program",
    "sample_seed",
    "summarize",
    "well_formed",
]

if TYPE_CHECKING:
    from memento.eval.benchmarks.problems import Benchmark, Problem, TestCase
    from memento.eval.benchmarks.prompts import PromptTemplate, build_prompt, chat_messages, load_template
    from memento.eval.benchmarks.rows import BenchmarkFormatError
    from memento.eval.benchmarks.sources import BENCHMARK_NAMES, BenchmarkUnavailable, load_benchmark
    from memento.eval.evaluate import grade_responses, run_eval
    from memento.eval.grading.graders import (
        Grade,
        answer_classes,
        grade,
        grade_choice,
        grade_code,
        grade_many,
        grade_math,
        math_equivalent,
    )
    from memento.eval.grading.metrics import (
        accuracy_summary,
        maj_at_k,
        mean_pass_at_k,
        pass_at_1,
        pass_at_k,
        response_summary,
        well_formed,
    )
    from memento.eval.grading.sandbox import Program, SandboxLimits, SandboxResult, run_many, run_program
    from memento.eval.report.summary import summarize
    from memento.eval.run.modes import Mode
    from memento.eval.run.options import EvalOptions, GradeOptions
    from memento.eval.run.sampling import sample_seed


__getattr__ = lazy_exports(__name__, _EXPORTS)

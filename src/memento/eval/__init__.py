"""Evaluation: benchmarks, prompts, graders, a code sandbox and the paper's metrics.

Modules (one concept each): `problems` (Problem, Benchmark), `sources` (load_benchmark),
`rows` / `tables` (reading native and local schemas), `prompts`, `answers` (extraction),
`equivalence` / `verify_pool` (math-verify under a deadline), `graders`, `sandbox` /
`code_tests` (running code solutions), `metrics`; the run: `options` (EvalOptions, GradeOptions),
`sampling` (the paper's defaults, per-sample seeds), `modes`, `backends` (hf, vllm, openai),
`replay` (the offline KV replay), `store` (resumable samples.jsonl), `records`, `summary`,
`report` / `plots`, `runner` (`run_eval`) and `responses` (`grade_responses`, `memento eval grade`).

The public names below load their module on first use, so ``import memento.eval`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Benchmark": "problems",
    "Problem": "problems",
    "TestCase": "problems",
    "BenchmarkUnavailable": "sources",
    "BENCHMARK_NAMES": "sources",
    "load_benchmark": "sources",
    "BenchmarkFormatError": "rows",
    "PromptTemplate": "prompts",
    "build_prompt": "prompts",
    "chat_messages": "prompts",
    "load_template": "prompts",
    "Grade": "graders",
    "answer_classes": "graders",
    "grade": "graders",
    "grade_choice": "graders",
    "grade_code": "graders",
    "grade_many": "graders",
    "grade_math": "graders",
    "math_equivalent": "graders",
    "Program": "sandbox",
    "SandboxLimits": "sandbox",
    "SandboxResult": "sandbox",
    "run_many": "sandbox",
    "run_program": "sandbox",
    "accuracy_summary": "metrics",
    "maj_at_k": "metrics",
    "mean_pass_at_k": "metrics",
    "pass_at_1": "metrics",
    "pass_at_k": "metrics",
    "response_summary": "metrics",
    "well_formed": "metrics",
    "EvalOptions": "options",
    "GradeOptions": "options",
    "sample_seed": "sampling",
    "Mode": "modes",
    "summarize": "summary",
    "run_eval": "runner",
    "grade_responses": "responses",
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
    from memento.eval.graders import (
        Grade,
        answer_classes,
        grade,
        grade_choice,
        grade_code,
        grade_many,
        grade_math,
        math_equivalent,
    )
    from memento.eval.metrics import (
        accuracy_summary,
        maj_at_k,
        mean_pass_at_k,
        pass_at_1,
        pass_at_k,
        response_summary,
        well_formed,
    )
    from memento.eval.modes import Mode
    from memento.eval.options import EvalOptions, GradeOptions
    from memento.eval.problems import Benchmark, Problem, TestCase
    from memento.eval.prompts import PromptTemplate, build_prompt, chat_messages, load_template
    from memento.eval.responses import grade_responses
    from memento.eval.rows import BenchmarkFormatError
    from memento.eval.runner import run_eval
    from memento.eval.sampling import sample_seed
    from memento.eval.sandbox import Program, SandboxLimits, SandboxResult, run_many, run_program
    from memento.eval.sources import BENCHMARK_NAMES, BenchmarkUnavailable, load_benchmark
    from memento.eval.summary import summarize


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'memento.eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"memento.eval.{module}"), name)
    globals()[name] = value
    return value

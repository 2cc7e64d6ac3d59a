"""A small finished run written by hand as `memento eval` writes one, for the viewer's tests that need no model:
a local benchmark file (two problems), manifest.json, samples.jsonl (memento and no_eviction, two samples
each, by default), summary.json from the same `summarize` as a run, and invocations.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

from memento.eval.benchmarks.sources import load_benchmark
from memento.eval.report.summary import summarize
from memento.eval.run.modes import builtin_mode
from memento.eval.run.store import record_invocation
from memento.format import BLOCK_END, BLOCK_START, SUMMARY_END, SUMMARY_START, THINK_END, THINK_START

MODES = ("memento", "no_eviction")


def response(answer: str, blocks: int = 3, block_chars: int = 60) -> str:
    """A memento trace of `blocks` blocks of `block_chars` characters each, ending with `answer`."""
    body = "".join(
        f"{BLOCK_START}{f'step {index}, ' * (block_chars // 8)}{BLOCK_END}{SUMMARY_START}did {index}{SUMMARY_END}"
        for index in range(blocks)
    )
    return f"{THINK_START}{body}{THINK_END}\nThe answer is \\boxed{{{answer}}}"


def write_small_run(
    directory: Path,
    *,
    response_text: str | None = None,
    modes: tuple[str, ...] = MODES,
    problems: int = 2,
    samples: int = 2,
    tokenizer: Path | None = None,
    benchmark: Path | None = None,
    correct: bool = True,
) -> Path:
    """The run in `directory` (created): `problems` x `samples` in each of `modes`; `response_text`, when given, is
    every sample's response; `tokenizer` (a local checkpoint) is the one the page's KV curves replay with;
    `benchmark` a benchmark file to share with other runs (written with `problems` rows when absent; default
    DIRECTORY/problems.jsonl); `correct` every sample's verdict."""
    directory.mkdir(parents=True, exist_ok=True)
    benchmark = benchmark or directory / "problems.jsonl"
    rows = [{"id": f"p{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(problems)]
    if not benchmark.exists():
        benchmark.write_text("".join(json.dumps(row) + "\n" for row in rows))
    settings = {name: builtin_mode(name, mask_delimiters=False).describe() for name in modes}
    manifest = {"model": "synthetic", "benchmark": str(benchmark), "backend": "hf", "choice_seed": 0}
    manifest |= {"modes": settings, "tokenizer": None if tokenizer is None else str(tokenizer)}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    records = []
    for mode in modes:
        for index in range(problems):
            for sample in range(samples):
                text = response_text if response_text is not None else response(str(index + 1))
                records.append(
                    {
                        *(("mode", mode), ("id", f"p{index}"), ("sample", sample), ("seed", sample)),
                        *(("response", text), ("finish_reason", "stop"), ("correct", correct)),
                        *(
                            ("answer", str(index + 1)),
                            ("status", "correct" if correct else "wrong"),
                            ("well_formed", True),
                        ),
                        *(("blocks", text.count(BLOCK_END)), ("mementos", text.count(SUMMARY_END))),
                        *(("seconds", 1.0), ("prompt_tokens", 20), ("tokens", len(text) // 4)),
                        *(("kv_peak_tokens", 60), ("kv_peak_bytes", 60 * 1024), ("kv_auc_gb_ktok", 0.01)),
                    }
                )
    records = [dict(record) for record in records]
    (directory / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    by_mode = {mode: [r for r in records if r["mode"] == mode] for mode in modes}
    summary = summarize(by_mode, load_benchmark(benchmark, use_hub=False), samples_per_problem=samples)
    (directory / "summary.json").write_text(json.dumps(summary))
    record_invocation(directory, ["memento", "eval", "--benchmark", str(benchmark)])
    return directory

"""`memento data build`: chains of thought -> memento training records, resumable.

Per trace: split into sentences -> score boundaries -> segment into blocks -> compress each
block into a memento (+ judge) -> one JSON line in ``records.jsonl`` (or a reason in
``failures.jsonl``, with its usage). Every line is written whole with one append and fsynced before
the trace's id goes to ``finished_ids.txt``; a restarted run drops a torn last line, skips every
trace with a record (including one whose record landed just before a kill), runs the failed ones
again (unless ``retry_failures`` is off) and loses none.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memento.data.compress import compress_extractive, compress_with_llm
from memento.data.inputs import read_traces, thinking_and_answer
from memento.data.llm import LLMClient, Usage
from memento.data.score import score_offline, score_with_llm
from memento.data.segment import segment
from memento.data.split import approximate_tokens, split_sentences
from memento.data.stages import SlowStages
from memento.format import Block, Trace, read_jsonl, render_assistant
from memento.record_ids import id_key, id_line

RECORDS, FAILURES, FINISHED = "records.jsonl", "failures.jsonl", "finished_ids.txt"


@dataclass(frozen=True)
class BuildOptions:
    """Pipeline settings (the paper's and the authors' pipeline defaults).

    Field metadata carries each option's help and CLI aliases (transformers' HfArgumentParser
    reads ``help`` and ``aliases``): the authors' ``--variance-weight`` is ``variance_penalty``.
    """

    min_block_tokens: int = field(default=200, metadata={"help": "every block at least this many tokens"})
    variance_penalty: float = field(
        default=0.5,
        metadata={
            "help": "lambda: weight of std/mean of the block sizes in the segmentation objective",
            "aliases": ["--variance-weight"],
        },
    )
    min_blocks: int = field(default=10, metadata={"help": "fewest blocks a trace is cut into (the authors' 10)"})
    max_blocks: int = field(default=20, metadata={"help": "most blocks a trace is cut into (the authors' 20)"})
    window: int = field(default=16, metadata={"help": "sentences per boundary-scoring request"})
    two_pass: bool = field(default=False, metadata={"help": "average scores over windows of 16 and 11"})
    max_iterations: int = field(default=2, metadata={"help": "refinement rounds below the threshold"})
    score_threshold: float = field(default=8.0, metadata={"help": "judge score a memento must reach"})
    workers: int = field(default=4, metadata={"help": "traces processed at once"})
    retry_failures: bool = field(
        default=True, metadata={"help": "run traces that failed in an earlier run again (--no-retry-failures: skip)"}
    )
    offline_min_ratio: float = field(
        default=0.15, metadata={"help": "--offline: a memento at least this fraction of its block's characters"}
    )
    offline_max_ratio: float = field(
        default=0.25, metadata={"help": "--offline: a memento at most this fraction of its block's characters"}
    )

    def __post_init__(self) -> None:
        for name, minimum in (
            ("min_block_tokens", 1),
            ("min_blocks", 1),
            ("max_blocks", 1),
            ("window", 2),
            ("workers", 1),
            ("max_iterations", 0),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
        if self.max_blocks < self.min_blocks:
            raise ValueError(f"max_blocks ({self.max_blocks}) must be >= min_blocks ({self.min_blocks})")
        if self.variance_penalty < 0:
            raise ValueError(f"variance_penalty: expected a number >= 0, got {self.variance_penalty!r}")
        if not 0 < self.offline_min_ratio <= self.offline_max_ratio <= 1:
            raise ValueError(
                f"offline_min_ratio, offline_max_ratio: expected 0 < min <= max <= 1, "
                f"got {self.offline_min_ratio!r} and {self.offline_max_ratio!r}"
            )

    @property
    def variance_weight(self) -> float:
        """The authors' name for `variance_penalty`."""
        return self.variance_penalty


def process_trace(
    record: dict[str, Any],
    options: BuildOptions,
    *,
    count_tokens: Callable[[str], int] = approximate_tokens,
    client: LLMClient | None = None,
    judge: LLMClient | None = None,
    usage: Usage | None = None,
    stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One trace through the pipeline; offline when `client` is None. Returns the output record.

    LLM calls are counted into `usage` as they happen, so a trace that fails still has them counted.
    `stage` is told what the trace is doing as each stage starts (`stages.SlowStages.enter`).
    """
    stage = stage or (lambda _: None)
    thinking, answer = thinking_and_answer(record["cot"])
    if not thinking.strip():  # would be a record of 0 blocks: nothing to train on
        raise ValueError("empty chain of thought: no text before </think> in 'cot'")
    stage(f"splitting {len(thinking):,} characters into sentences")
    split = split_sentences(thinking, count_tokens=count_tokens)
    sentences = split.sentences
    tokens = [count_tokens(s) for s in sentences]
    usage = Usage() if usage is None else usage
    stage(f"scoring {max(len(sentences) - 1, 0):,} boundaries" + (" with the LLM" if client else ""))
    if client is None:
        scores = score_offline(sentences)
    else:
        scores = score_with_llm(sentences, client, window=options.window, two_pass=options.two_pass, usage=usage)
    stage(f"segmenting {len(sentences):,} sentences into {options.min_blocks}-{options.max_blocks} blocks")
    ranges = segment(
        scores,
        tokens,
        min_block_tokens=options.min_block_tokens,
        variance_penalty=options.variance_penalty,
        min_blocks=options.min_blocks,
        max_blocks=options.max_blocks,
    )
    blocks = ["".join(sentences[a : b + 1]).strip() for a, b in ranges]
    problem = str(record.get("problem", ""))
    rewritten: list[int] = []
    stage(f"writing mementos for {len(blocks)} blocks" + (" with the LLM" if client else ""))
    if client is None:
        ratios = (options.offline_min_ratio, options.offline_max_ratio)
        mementos = [compress_extractive(b, ratios=ratios) for b in blocks]
        judge_scores, feedback, rounds = None, None, 0
    else:
        compression = compress_with_llm(
            problem,
            blocks,
            client,
            judge,
            threshold=options.score_threshold,
            max_iterations=options.max_iterations,
            usage=usage,
        )
        mementos, judge_scores, feedback, rounds = (
            compression.mementos,
            compression.scores,
            compression.feedback,
            compression.rounds,
        )
        rewritten = compression.rewritten
    trace = Trace(problem, [Block(b, m) for b, m in zip(blocks, mementos, strict=True)], answer=answer or "")
    return {
        "task_id": record["task_id"],
        "domain": record.get("domain"),
        **{key: record[key] for key in ("source", "difficulty") if key in record},
        "problem": problem,
        "sentences": sentences,
        "boundary_scores": scores,
        "block_ranges": ranges,
        "blocks": blocks,
        "mementos": mementos,
        "judge_scores": judge_scores,
        "judge_feedback": feedback,
        "refinement_rounds": rounds,
        "mementos_rewritten": rewritten,
        "answer": answer or "",
        "text": render_assistant(trace),
        "block_tokens": [count_tokens(b) for b in blocks],
        "memento_tokens": [count_tokens(m) for m in mementos],
        "usage": usage_dict(usage),
    }


def usage_dict(usage: Usage) -> dict[str, int]:
    """A trace's LLM usage as written in its record or failure line."""
    return {
        "calls": usage.calls,
        "failed_calls": usage.failed_calls,
        "retries": usage.retries,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
    }


class _Output:
    """Append-only, fsynced output files: which traces have a record, which failed (and why).

    ``failures.jsonl`` lists only traces that have no record: the lines of a trace that succeeds on a
    retry are dropped when the run ends (or, after a kill, when the next run opens the folder).
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        for name in (RECORDS, FAILURES, FINISHED):
            self._drop_torn_line(directory / name)
        # Task ids are compared by `record_ids.id_key`: 1 and "1" are two traces.
        self.recorded: set[str] = set()  # keys of the traces with a record
        self.failed: dict[str, str] = {}  # key -> last reason, for traces without a record
        ids: dict[str, Any] = {}  # key -> task id, for every trace with an outcome
        for _, line in self._lines(RECORDS):
            self.recorded.add(id_key(line["task_id"]))
            ids[id_key(line["task_id"])] = line["task_id"]
        for _, line in self._lines(FAILURES):
            self.failed[id_key(line["task_id"])] = str(line.get("reason", ""))
            ids[id_key(line["task_id"])] = line["task_id"]
        for key in self.recorded:
            self.failed.pop(key, None)
        path = directory / FINISHED
        listed = set(path.read_text(encoding="utf-8").split("\n")) if path.exists() else set()
        # A kill between an outcome's append and the id's append leaves an id that only the outcome knows.
        missing = [id_line(task_id) for task_id in ids.values() if id_line(task_id) not in listed]
        if missing:
            self._append(FINISHED, "".join(line + "\n" for line in sorted(missing)))
        self._lock = threading.Lock()
        self.prune_failures()

    def prune_failures(self) -> None:
        """Rewrite failures.jsonl without the lines of traces that have a record now (whole, then renamed)."""
        path = self.directory / FAILURES
        if not path.exists():
            return
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        keep = [line for line in lines if not line.strip() or id_key(json.loads(line)["task_id"]) not in self.recorded]
        if len(keep) == len(lines):
            return
        temporary = path.with_name(f".{FAILURES}.partial")
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write("".join(keep))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def _lines(self, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
        path = self.directory / name
        return read_jsonl(path) if path.exists() else iter(())

    def done(self, retry_failures: bool) -> set[str]:
        """Traces a run skips: those with a record, and the failed ones unless they are retried."""
        return self.recorded if retry_failures else self.recorded | set(self.failed)

    @staticmethod
    def _drop_torn_line(path: Path) -> None:
        """A kill mid-write can leave a last line without its newline: cut it off."""
        if not path.exists() or path.stat().st_size == 0:
            return
        data = path.read_bytes()
        if not data.endswith(b"\n"):
            with path.open("r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)

    def _append(self, name: str, line: str) -> None:
        descriptor = os.open(self.directory / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line.encode("utf-8"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def write(self, task_id: Any, record: dict[str, Any] | None, failure: str | None, usage: Usage) -> None:
        with self._lock:
            if record is not None:
                self._append(RECORDS, json.dumps(record, ensure_ascii=False) + "\n")
                self.recorded.add(id_key(task_id))
                self.failed.pop(id_key(task_id), None)
            else:
                line = {"task_id": task_id, "reason": failure, "usage": usage_dict(usage)}
                self._append(FAILURES, json.dumps(line, ensure_ascii=False) + "\n")
                self.failed[id_key(task_id)] = str(failure)
            self._append(FINISHED, id_line(task_id) + "\n")


@dataclass
class BuildSummary:
    """What one `build` run did, and the state of the output folder after it.

    `failed`: traces of this run that failed; `retried`: traces that had failed before and were
    run again; `outstanding`: input traces that still have no record (failed now or earlier).
    """

    processed: int
    skipped: int
    failed: int
    usage: Usage
    retried: int = 0
    outstanding: int = 0
    failures_path: Path | None = None
    first_failure: str | None = None

    @property
    def exit_code(self) -> int:
        """1 while any input trace has no record (nothing is silently lost), else 0."""
        return 1 if self.failed or self.outstanding else 0

    def report(self, output_dir: str | Path) -> str:
        """The run in a few lines, failures first: how many, where, and the first reason."""
        retried = f", {self.retried} of them failed before and were retried" if self.retried else ""
        lines = [
            f"{self.processed} traces processed{retried}; {self.skipped} already done; "
            f"{self.usage.calls} LLM calls ({self.usage.failed_calls} failed), "
            f"{self.usage.prompt_tokens + self.usage.completion_tokens} tokens -> {output_dir}"
        ]
        if self.failed:
            lines.append(f"{self.failed} traces failed: reasons in {self.failures_path}")
            lines.append(f"first failure: {self.first_failure}")
        earlier = self.outstanding - self.failed
        if earlier > 0:
            lines.append(f"{earlier} traces failed in an earlier run and were not retried (--no-retry-failures)")
        if self.outstanding:
            lines.append(f"{self.outstanding} traces have no record: run the same command again to retry them")
        return "\n".join(lines)


def build(
    input_path: str | Path,
    output_dir: str | Path,
    options: BuildOptions,
    *,
    client: LLMClient | None = None,
    judge: LLMClient | None = None,
    count_tokens: Callable[[str], int] = approximate_tokens,
    limit: int | None = None,
    progress: bool = True,
    stages: SlowStages | None = None,
) -> BuildSummary:
    """Run the pipeline over a JSONL file. Traces with a record (from an earlier run) are skipped;
    failed ones are run again unless `options.retry_failures` is off. Every failure is written to
    ``failures.jsonl`` with its reason and usage; `BuildSummary.exit_code` is 1 while any is left.
    `stages` (entered here) says what each trace is doing once a stage of it runs long."""
    records = list(read_traces(input_path))[:limit]  # the whole file is checked before anything is written
    output = _Output(Path(output_dir))
    done = output.done(options.retry_failures)
    todo = [r for r in records if id_key(r["task_id"]) not in done]
    retried = sum(id_key(r["task_id"]) in output.failed for r in todo)
    usage = Usage()
    failures: list[str] = []

    def run(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, str | None, Usage]:
        spent, task_id = Usage(), record["task_id"]
        stage = None if stages is None else lambda text: stages.enter(task_id, text)
        try:
            result = process_trace(
                record, options, count_tokens=count_tokens, client=client, judge=judge, usage=spent, stage=stage
            )
            return record, result, None, spent
        except Exception as error:  # one trace's failure is recorded, never the run's end
            return record, None, f"{type(error).__name__}: {error}", spent
        finally:
            if stages is not None:
                stages.leave(task_id)

    from rich.progress import Progress

    with Progress(disable=not progress, transient=False) as bar, stages or contextlib.nullcontext():
        task = bar.add_task("building mementos", total=len(todo))
        workers = 1 if client is None else options.workers
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in as_completed([pool.submit(run, r) for r in todo]):
                record, result, failure, spent = future.result()
                output.write(record["task_id"], result, failure, spent)
                usage.add(spent)
                if failure is not None:
                    failures.append(f"{record['task_id']}: {failure}")
                bar.advance(task)
    output.prune_failures()
    return BuildSummary(
        processed=len(todo),
        skipped=len(records) - len(todo),
        failed=len(failures),
        usage=usage,
        retried=retried,
        outstanding=sum(id_key(r["task_id"]) not in output.recorded for r in records),
        failures_path=output.directory / FAILURES,
        first_failure=failures[0] if failures else None,
    )

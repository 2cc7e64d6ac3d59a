"""Where problems come from: one prompt, a file, or a benchmark (memento.eval's); each `Problem` has a stable id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from memento import textfiles
from memento.record_ids import IdLines

TEXT_KEYS = ("problem", "prompt", "question")
"""Keys a JSONL line may hold its problem under, first found wins."""

ID_KEYS = ("id", "unique_id", "task_id")
"""Keys a JSONL line may hold its id under; without one, the id is the line number."""


class ProblemSourceError(ValueError):
    """Problems that cannot be read; the message names the file, line and field."""


@dataclass(frozen=True)
class Problem:
    """One problem: `id` names it in outputs (and for resuming), `text` is what the model sees."""

    id: str
    text: str


def read_problem_file(path: str | Path) -> list[Problem]:
    """Problems from `path`: JSONL (``.jsonl``) of objects with an id and a problem, else one problem as text."""
    path = Path(path)
    if not path.is_file():
        raise ProblemSourceError(f"{path}: no such file")
    if path.suffix != ".jsonl":
        text = textfiles.read_text(path, error=ProblemSourceError).strip()
        if not text:
            raise ProblemSourceError(f"{path}: empty file; expected the text of a problem")
        return [Problem(path.stem, text)]
    problems: list[Problem] = []
    ids = IdLines(path, "id", ProblemSourceError)
    for number, record in textfiles.read_jsonl(path, error=ProblemSourceError):
        where = f"{path}:{number}"
        if not isinstance(record, dict):
            raise ProblemSourceError(f"{where}: expected a JSON object with 'id' and 'problem'")
        text = next((record[k] for k in TEXT_KEYS if k in record), None)
        if not isinstance(text, str) or not text.strip():
            raise ProblemSourceError(f"{where}: field 'problem': expected a non-empty string")
        problem_id = next((record[k] for k in ID_KEYS if k in record), number)
        if not isinstance(problem_id, str | int):
            raise ProblemSourceError(f"{where}: field 'id': expected a string or an integer")
        problem_id = str(problem_id)
        ids.add(problem_id, number)
        problems.append(Problem(problem_id, text))
    if not problems:
        raise ProblemSourceError(f"{path}: no problems in the file")
    return problems


def load_benchmark(name: str, limit: int | None = None) -> list[Problem]:
    """A benchmark's problems through `memento.eval.benchmarks.sources.load_benchmark` (a name such as ``math500``,
    or a JSONL/JSON/parquet file), first `limit` of them; a multiple-choice problem's text lists its choices."""
    from memento.eval.benchmarks.prompts import format_choices
    from memento.eval.benchmarks.sources import BenchmarkUnavailable
    from memento.eval.benchmarks.sources import load_benchmark as load_eval_benchmark

    try:
        benchmark = load_eval_benchmark(name, limit)
    except BenchmarkUnavailable as error:
        raise ProblemSourceError(f"--benchmark: {error}") from None
    return [
        Problem(
            problem.id,
            f"{problem.problem}\n\n{format_choices(problem.choices)}" if problem.choices else problem.problem,
        )
        for problem in benchmark
    ]


def load_problems(*, prompt: str | None, file: Path | None, benchmark: str | None, limit: int | None) -> list[Problem]:
    """The problems of a run from exactly one source, the first `limit` of them."""
    if prompt is not None:
        if not prompt.strip():
            raise ProblemSourceError("--prompt: expected a non-empty problem")
        problems = [Problem("prompt", prompt)]
    elif file is not None:
        problems = read_problem_file(file)
    elif benchmark is not None:
        problems = load_benchmark(benchmark, limit)
    else:
        raise ProblemSourceError("expected one of --prompt, --file, --benchmark")
    return problems[:limit] if limit is not None else problems

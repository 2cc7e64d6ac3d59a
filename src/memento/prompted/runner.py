"""`memento prompted`: many problems at once, resumable, with a progress bar and a side-by-side table."""

from __future__ import annotations

import json
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from memento.prompted.client import EndpointError
from memento.prompted.config import PromptedOptions
from memento.prompted.loop import PromptedSolver
from memento.prompted.output import ResultLog
from memento.prompted.problems import Problem, load_problems
from memento.tables import print_table


def solve_one(solver: PromptedSolver, problem: Problem, *, plain: bool) -> dict[str, Any]:
    """The record of one problem: its id and `PromptedResult.to_record()`, or its id and an "error"."""
    try:
        result = solver.solve(problem.text)
        if plain:
            result.plain = solver.plain_call(problem.text)
    except EndpointError as error:
        return {"id": problem.id, "error": str(error)}
    return {"id": problem.id, **result.to_record()}


def solve_problems(
    problems: list[Problem],
    solver: PromptedSolver,
    log: ResultLog,
    *,
    plain: bool = False,
    concurrency: int = 4,
    console: Console | None = None,
) -> dict[str, dict[str, Any]]:
    """Solve every problem not already done in `log`, `concurrency` at a time; records by id.

    Each record is written to `log` as soon as its problem is finished, so a killed run loses
    only the problems in flight.
    """
    records: dict[str, dict[str, Any]] = {p.id: log.done[p.id] for p in problems if p.id in log.done}
    todo = [p for p in problems if p.id not in log.done]
    columns = (TextColumn("prompted"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        Progress(*columns, console=console or Console(stderr=True)) as bar,
        ThreadPoolExecutor(max_workers=concurrency) as pool,
    ):
        task = bar.add_task("prompted", total=len(problems), completed=len(records))
        futures = [pool.submit(solve_one, solver, problem, plain=plain) for problem in todo]
        for future in as_completed(futures):
            record = future.result()
            log.write(record)
            records[record["id"]] = record
            bar.advance(task)
    return {p.id: records[p.id] for p in problems}


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}" if denominator else "-"


def summary_table(records: list[dict[str, Any]]) -> Table:
    """Per problem: rounds, fallbacks, peak context and billed tokens, prompted beside plain."""
    table = Table(title="prompted mode (plain chain of thought beside it when run)")
    for name in (
        "id",
        "rounds",
        "fallbacks",
        "peak ctx",
        "billed",
        "plain peak",
        "plain billed",
        "peak plain/prompted",
    ):
        table.add_column(name, justify="left" if name == "id" else "right")
    table.add_column("answer", overflow="ellipsis", max_width=40)
    for record in records:
        if "error" in record:
            table.add_row(record["id"], *["-"] * 7, f"error: {record['error']}")
            continue
        billed = record["total_prompt_tokens"] + record["total_completion_tokens"]
        plain = record.get("plain")
        plain_cells = ["-", "-", "-"]
        if plain is not None:
            plain_billed = plain["prompt_tokens"] + plain["completion_tokens"]
            ratio = _ratio(plain["peak_context_tokens"], record["peak_context_tokens"])
            plain_cells = [str(plain["peak_context_tokens"]), str(plain_billed), ratio]
        table.add_row(
            record["id"],
            str(record["rounds"]),
            str(record["fallbacks"]),
            str(record["peak_context_tokens"]),
            str(billed),
            *plain_cells,
            record["answer"].replace("\n", " "),
        )
    return table


def summary_line(records: list[dict[str, Any]]) -> str:
    """Mean peak context and billed tokens over the solved problems (and the plain call's, when run)."""
    solved = [r for r in records if "error" not in r]
    if not solved:
        return "no problem solved"
    peak = statistics.mean(r["peak_context_tokens"] for r in solved)
    billed = statistics.mean(r["total_prompt_tokens"] + r["total_completion_tokens"] for r in solved)
    line = f"{len(solved)} solved: mean peak context {peak:.0f} tokens, mean billed {billed:.0f} tokens"
    paired = [r for r in solved if "plain" in r]
    if paired:
        plain_peak = statistics.mean(r["plain"]["peak_context_tokens"] for r in paired)
        prompted_peak = statistics.mean(r["peak_context_tokens"] for r in paired)
        line += f"; plain call: mean peak {plain_peak:.0f} tokens (plain/prompted {_ratio(plain_peak, prompted_peak)})"
    return line


def run_prompted(options: PromptedOptions, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run `memento prompted`; returns the exit status (0 all solved, 1 some failed, 2 bad input).

    With `options.json`, stdout gets one `to_record()` object per problem, in input order (a
    superset of `PromptedResult.to_json()`; failed problems as {"id", "error"}); otherwise a table.
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        problems = load_problems(
            prompt=options.prompt, file=options.file, benchmark=options.benchmark, limit=options.limit
        )
        log = ResultLog(options.output)
        solver = PromptedSolver(options.solver_config())
    except (ValueError, OSError) as error:
        print(f"memento prompted: error: {error}", file=stderr)
        return 2
    error_console = Console(file=stderr)
    records = list(
        solve_problems(
            problems, solver, log, plain=options.plain, concurrency=options.concurrency, console=error_console
        ).values()
    )
    if options.json:
        for record in records:
            print(json.dumps(record, ensure_ascii=False), file=stdout, flush=True)
    else:
        console = Console(file=stdout, soft_wrap=True)
        print_table(summary_table(records), console)
        console.print(summary_line(records))
    failed = [r for r in records if "error" in r]
    for record in failed:
        print(f"memento prompted: problem {record['id']}: {record['error']}", file=stderr)
    return 1 if failed else 0

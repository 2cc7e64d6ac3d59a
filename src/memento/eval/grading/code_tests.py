"""A code problem's tests + a solution -> the `Program` the sandbox runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from memento.eval.benchmarks.problems import Problem
from memento.eval.grading.sandbox import Program

_CASE_RUNNER = Path(__file__).with_name("case_runner.py")


def defines(code: str, name: str) -> bool:
    """Whether `code` has a ``def name(`` (at any indentation)."""
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def build_program(problem: Problem, code: str) -> Program:
    """The program that exits 0 exactly when `code` passes `problem`'s tests.

    * Test code (HumanEval): the solution, then the tests, then ``check(entry_point)``. A
      solution that does not define the entry point is taken as a completion of the prompt
      (the prompt is put in front of it).
    * Test cases (LiveCodeBench, local lists): `case_runner` with ``solution.py`` and
      ``cases.json``.
    """
    if problem.kind != "code" or not problem.tests:
        raise ValueError(f"problem {problem.id} is not a code problem with tests")
    if isinstance(problem.tests, str):
        entry = problem.entry_point
        solution = code if entry is None or defines(code, entry) else problem.problem + code
        check = f"\n\ncheck({entry})\n" if entry else "\n"
        return Program({"main.py": f"{solution}\n\n{problem.tests}{check}"})
    cases = [{"input": case.input, "output": case.output, "call": case.call} for case in problem.tests]
    if any(case["call"] for case in cases) and not problem.entry_point:
        raise ValueError(f"problem {problem.id} has call test cases but no entry_point")
    spec = json.dumps({"entry_point": problem.entry_point, "cases": cases})
    runner = _CASE_RUNNER.read_text(encoding="utf-8")
    return Program({"main.py": runner, "solution.py": code, "cases.json": spec})

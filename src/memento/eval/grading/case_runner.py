"""Runs inside the sandbox (do not import): a solution against input/output test cases.

Usage: ``python case_runner.py`` in a directory holding ``solution.py`` and ``cases.json``
(``{"entry_point": name or null, "cases": [{"input", "output", "call"}, ...]}``). Exits 0 when
every case passes; otherwise prints the first failing case's index to stderr and exits 1.

* stdin cases run the solution as ``__main__`` with ``input`` on stdin; its stdout must equal
  ``output`` line by line and token by token (numbers within 1e-6 relative or absolute).
* call cases run the solution once, then call ``Solution().<entry_point>`` (or the top-level
  function of that name) with the JSON values of ``input``'s lines; the result must equal the
  JSON value of ``output`` (floats within 1e-6; tuples compare as lists).
"""

import contextlib
import io
import json
import math
import sys


def _tokens_equal(got: str, want: str) -> bool:
    if got == want:
        return True
    try:
        a, b = float(got), float(want)
    except ValueError:
        return False
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)


def _stdout_matches(got: str, want: str) -> bool:
    got_lines = [line.split() for line in got.strip().splitlines() if line.strip()]
    want_lines = [line.split() for line in want.strip().splitlines() if line.strip()]
    if len(got_lines) != len(want_lines):
        return False
    for got_line, want_line in zip(got_lines, want_lines, strict=True):
        if len(got_line) != len(want_line):
            return False
        if not all(_tokens_equal(g, w) for g, w in zip(got_line, want_line, strict=True)):
            return False
    return True


def _values_equal(got: object, want: object) -> bool:
    if isinstance(got, tuple):
        got = list(got)
    if isinstance(got, float) or isinstance(want, float):
        try:
            return math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-6)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(_values_equal(g, w) for g, w in zip(got, want, strict=True))
    return got == want


# LeetCode-style solutions use typing names and common modules without importing them
PRELUDE = "from typing import *\nimport bisect, collections, functools, heapq, itertools, math, re, string\n"


def _fresh_namespace(name: str) -> dict:
    namespace: dict = {"__name__": name}
    exec(PRELUDE, namespace)
    return namespace


def _run_stdin_case(code: object, case: dict) -> bool:
    sys.stdin = io.StringIO(case["input"])
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            exec(code, _fresh_namespace("__main__"))
    except SystemExit as stop:
        if stop.code not in (None, 0):
            return False
    return _stdout_matches(captured.getvalue(), case["output"])


def _callable(namespace: dict, entry_point: str) -> object:
    solution = namespace.get("Solution")
    if isinstance(solution, type) and hasattr(solution, entry_point):
        return getattr(solution(), entry_point)
    return namespace[entry_point]


def main() -> int:
    with open("solution.py", encoding="utf-8") as handle:
        source = handle.read()
    with open("cases.json", encoding="utf-8") as handle:
        spec = json.load(handle)
    code = compile(source, "solution.py", "exec")
    namespace = _fresh_namespace("solution")
    if any(case["call"] for case in spec["cases"]):
        exec(code, namespace)
    for index, case in enumerate(spec["cases"]):
        if case["call"]:
            arguments = [json.loads(line) for line in case["input"].splitlines() if line.strip()]
            passed = _values_equal(_callable(namespace, spec["entry_point"])(*arguments), json.loads(case["output"]))
        else:
            passed = _run_stdin_case(code, case)
        if not passed:
            print(f"test case {index} failed", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

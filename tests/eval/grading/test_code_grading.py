"""Code responses are graded by running the benchmark's tests in the sandbox."""

from __future__ import annotations

import base64
import json
import pickle
import time
import zlib
from pathlib import Path

import pytest

from memento.eval import Problem, TestCase, grade_code, grade_many, load_benchmark
from memento.eval.benchmarks.rows import decode_lcb_tests, livecodebench_row
from memento.eval.grading.answers import extract_code
from memento.eval.grading.sandbox import SandboxLimits
from memento.format import load_traces

TRACES = Path(__file__).resolve().parents[3] / "examples" / "traces"
FAST = SandboxLimits(timeout_s=3.0, memory_mb=512)


def fenced(code: str) -> str:
    return f"Here is the solution.\n\n```python\n{code}\n```\n"


def test_every_humaneval_canonical_solution_passes_in_parallel():
    benchmark = load_benchmark("humaneval", use_hub=False)
    start = time.monotonic()
    grades = grade_many([(p, fenced(p.answer)) for p in benchmark], workers=4)
    seconds = time.monotonic() - start
    assert [p.id for p, g in zip(benchmark, grades, strict=True) if not g.correct] == []
    assert len(grades) == 164
    print(f"164 HumanEval canonical solutions graded in {seconds:.1f} s")


def test_wrong_humaneval_solutions_fail():
    problems = load_benchmark("humaneval", limit=3, use_hub=False).problems
    first = problems[0]
    off_by_one = first.answer.replace("if distance < threshold", "if distance <= threshold + 1")
    assert off_by_one != first.answer
    responses = [
        (first, fenced(off_by_one)),
        (first, fenced(problems[1].answer)),  # another problem's solution: no has_close_elements
        (problems[1], fenced(problems[1].problem + "    return []\n")),
        (problems[2], "I would return the fractional part."),  # no code block
        (problems[2], fenced(problems[2].answer)),
    ]
    grades = grade_many(responses, limits=FAST)
    assert [g.correct for g in grades] == [False, False, False, False, True]
    assert grades[3].status == "no_answer"


def test_a_completion_of_the_prompt_is_accepted():
    problem = load_benchmark("humaneval", limit=1, use_hub=False).problems[0]
    body = problem.answer[len(problem.problem) :]
    assert grade_code(problem, fenced(body), limits=FAST)  # the body alone: the prompt is put in front


def test_code_written_while_thinking_is_not_graded():
    problem = load_benchmark("humaneval", limit=1, use_hub=False).problems[0]
    thinking = f"<think>\n<|block_start|>{fenced(problem.answer)}<|block_end|>\n"
    assert extract_code(thinking) is None
    assert not grade_code(problem, thinking, limits=FAST)
    assert grade_code(problem, f"{thinking}</think>\n\n{fenced(problem.answer)}", limits=FAST)


def test_the_authors_livecodebench_trace_passes_the_statement_example():
    (_, trace), *_ = load_traces(TRACES / "memento_trace_code.json")
    response = trace.render()
    problem = Problem(
        id="abc-queries",
        problem=trace.prompt,
        answer="",
        kind="code",
        tests=(
            TestCase("5\n1 20\n1 30\n2 1\n1 40\n2 3\n", "30\n20\n"),
            TestCase("3\n1 7\n1 9\n2 2\n", "7\n"),
        ),
    )
    assert grade_code(problem, response, limits=FAST)
    wrong = Problem(**{**problem.__dict__, "tests": (TestCase("3\n1 7\n1 9\n2 2\n", "9\n"),)})
    assert not grade_code(wrong, response, limits=FAST)


def _encode_private(cases: list[dict]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


def test_livecodebench_rows_decode_and_grade_functional_tests():
    row = {
        "question_id": "3000",
        "question_title": "two sum",
        "question_content": "Return the indices of the two numbers that add up to target.",
        "platform": "leetcode",
        "starter_code": "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        ",
        "public_test_cases": json.dumps([{"input": "[2, 7, 11, 15]\n9", "output": "[0, 1]", "testtype": "functional"}]),
        "private_test_cases": _encode_private(
            [{"input": "[3, 2, 4]\n6", "output": "[1, 2]", "testtype": "functional"}]
        ),
        "metadata": json.dumps({"func_name": "twoSum"}),
        "difficulty": "easy",
        "contest_date": "2025-03-01T00:00:00",
    }
    problem = livecodebench_row(row, 0)
    assert problem.entry_point == "twoSum" and len(problem.tests) == 2 and all(t.call for t in problem.tests)
    solution = (
        "class Solution:\n"
        "    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
        "        seen = {}\n"
        "        for i, n in enumerate(nums):\n"
        "            if target - n in seen:\n"
        "                return [seen[target - n], i]\n"
        "            seen[n] = i\n"
    )
    assert grade_code(problem, fenced(solution), limits=FAST)
    assert not grade_code(
        problem, fenced(solution.replace("[seen[target - n], i]", "[i, seen[target - n]]")), limits=FAST
    )


def test_hub_test_cases_never_run_pickled_code():
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    hostile = base64.b64encode(zlib.compress(pickle.dumps(Exploit()))).decode()
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to unpickle builtins\.print"):
        decode_lcb_tests(hostile)


def test_stdin_cases_compare_tokens_and_numbers():
    problem = Problem(
        id="mean",
        problem="Print the mean of the numbers.",
        answer="",
        kind="code",
        tests=(TestCase("1 2\n", "1.5\n"), TestCase("1 2 4\n", "2.3333333\n")),
    )
    good = "nums = list(map(int, input().split()))\nprint(sum(nums) / len(nums))\n"
    assert grade_code(problem, fenced(good), limits=FAST)
    assert not grade_code(problem, fenced("print(1.5)\n"), limits=FAST)
    assert not grade_code(problem, fenced("import sys\nsys.exit(3)\n"), limits=FAST)

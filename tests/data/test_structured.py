"""Structured output: every request carries its answer's JSON schema; auto falls back once when refused."""

from __future__ import annotations

import json

import pytest

from memento.cli import main
from memento.data import schemas
from memento.data.llm import LLMClient, LLMFailure, StructuredOutput, Usage
from tests.data.fake_openai import FakeOpenAI
from tests.data.test_build import _write_input

FLAGS = ("--model", "m", "--api-key", "k", "--min-block-tokens", "30", "--min-blocks", "2", "--backoff", "0.01")


def _build(data, out, server: FakeOpenAI, *flags: str) -> int:
    arguments = ["data", "build", "--input", str(data), "--output-dir", str(out), "--base-url", server.base_url]
    return main([*arguments, *FLAGS, "--max-attempts", "2", "--workers", "1", *flags])


def test_every_request_asks_for_its_own_schema_and_its_answers_fit_it(tmp_path, capsys):
    data = tmp_path / "in.jsonl"
    _write_input(data, 2)
    with FakeOpenAI() as server:
        assert _build(data, tmp_path / "out", server, "--max-tokens", "300") == 0
    assert "structured output: on (response_format json_schema, strict)" in capsys.readouterr().out
    kinds = {"segment a chain": "boundary_scores", "You write mementos": "mementos", "You grade mementos": "grades"}
    seen = set()
    for body in server.bodies:
        system = body["messages"][0]["content"]
        name = next(kind for cue, kind in kinds.items() if cue in system)
        answer_format = body["response_format"]
        assert answer_format["type"] == "json_schema" and answer_format["json_schema"]["strict"] is True
        assert answer_format["json_schema"]["name"] == name and body["max_tokens"] == 300
        seen.add(name)
        schema = answer_format["json_schema"]["schema"]
        assert schema["additionalProperties"] is False and schema["required"] == list(schema["properties"])
    assert seen == set(kinds.values())
    # the schema of a request says exactly which boundaries and how many mementos it wants
    first = server.bodies[0]
    entries = first["response_format"]["json_schema"]["schema"]["properties"]["scores"]
    asked = [int(k) for k in first["messages"][1]["content"].rsplit(": ", 1)[1].rstrip(".").split(", ")]
    assert entries["items"]["properties"]["boundary"]["enum"] == asked
    assert entries["minItems"] == entries["maxItems"] == len(asked)
    assert entries["items"]["properties"]["score"]["enum"] == [0, 1, 2, 3]


def test_auto_falls_back_once_with_one_line_and_loses_nothing(tmp_path, capsys):
    data = tmp_path / "in.jsonl"
    _write_input(data, 3)
    with FakeOpenAI(refuse_schema=True) as server:
        assert _build(data, tmp_path / "out", server, "--workers", "3") == 0
    captured = capsys.readouterr()
    notices = [line for line in captured.err.splitlines() if line.startswith("structured output:")]
    assert len(notices) == 1 and "BadRequestError" in notices[0] and "for the rest of the run" in notices[0]
    assert "structured output: off for this run: the endpoint refused it" in captured.out
    refused = [body for body in server.bodies if "response_format" in body]
    assert 1 <= len(refused) <= 3  # each worker's first request at most; none after the refusal is known
    assert all("response_format" not in body for body in server.bodies[server.bodies.index(refused[-1]) + 1 :])
    records = [json.loads(line) for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert sorted(r["task_id"] for r in records) == ["t0", "t1", "t2"]
    # the refused requests are counted as failed calls, not hidden
    assert sum(r["usage"]["failed_calls"] for r in records) == len(refused)


def test_on_fails_with_a_hint_and_off_never_sends_it(tmp_path):
    with FakeOpenAI(refuse_schema=True) as server:
        client = LLMClient(server.base_url, "m", api_key="k", backoff=0.01, structured=StructuredOutput("on"))
        with pytest.raises(LLMFailure, match="does the endpoint take response_format json_schema"):
            client.ask_json("You write mementos", "Block 1:\nx", schemas.mementos(1), Usage())
        off = LLMClient(server.base_url, "m", api_key="k", backoff=0.01, structured=StructuredOutput("off"))
        assert off.ask_json("You write mementos", "Block 1:\nx = 1", schemas.mementos(1, 50), Usage()) == [
            "memento 1: x = 0"
        ]
    assert ["response_format" in body for body in server.bodies] == [True, False]
    with pytest.raises(ValueError, match="structured output mode must be one of auto, on, off"):
        StructuredOutput("sometimes")


def test_schemas_check_what_they_ask_for():
    scores = schemas.boundary_scores([4, 5])
    assert scores.parse({"scores": [{"boundary": 5, "score": 1}, {"boundary": 4, "score": 3}]}) == {4: 3.0, 5: 1.0}
    with pytest.raises(schemas.MalformedAnswer, match=r"no score for boundaries \[5\]"):
        scores.parse({"scores": [{"boundary": 4, "score": 3}]})
    with pytest.raises(schemas.MalformedAnswer, match="score 0-3"):
        scores.parse({"scores": [{"boundary": 4, "score": 7}, {"boundary": 5, "score": 0}]})
    mementos = schemas.mementos(2, max_chars=40)
    assert mementos.schema["properties"]["mementos"]["items"] == {"type": "string", "maxLength": 40}
    with pytest.raises(schemas.MalformedAnswer, match="expected 2 mementos, got 1"):
        mementos.parse({"mementos": ["a"]})
    grades = schemas.grades(2)
    entry = grades.schema["properties"]["grades"]["items"]["properties"]
    assert entry["block"]["enum"] == [1, 2] and (entry["score"]["minimum"], entry["score"]["maximum"]) == (0, 10)
    assert grades.parse(
        {"grades": [{"block": 2, "score": 4, "feedback": "f"}, {"block": 1, "score": 9, "feedback": ""}]}
    ) == [
        (9.0, ""),
        (4.0, "f"),
    ]


def test_an_answer_cut_by_the_token_cap_says_so():
    cut = {"content": '{"mementos": ["x = 1 and then', "finish_reason": "length"}
    with FakeOpenAI(responder=lambda body: cut) as server:
        client = LLMClient(server.base_url, "m", api_key="k", max_attempts=2, backoff=0.01, max_tokens=8)
        with pytest.raises(LLMFailure, match=r"hit the token cap: raise --max-tokens"):
            client.ask_json("You write mementos", "Block 1:\nx", schemas.mementos(1), Usage())
    assert [body["max_tokens"] for body in server.bodies] == [8, 8]
    with pytest.raises(ValueError, match="max_tokens must be >= 1"):
        LLMClient(server.base_url, "m", max_tokens=0)

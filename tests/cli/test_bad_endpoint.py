"""Endpoints users point the commands at that are not what they should be, over real HTTP with the official
`openai` client: a 200 carrying a proxy's HTML page (said in one line: status, content type, the page's first
characters; asked again like a malformed answer), and a --base-url that is not a URL (refused at once)."""

from __future__ import annotations

import json

import pytest

from memento.cli import main
from memento.errors import UsageError
from memento.prompted.config import PromptedConfig
from tests.data.fake_openai import FakeOpenAI
from tests.data.test_build import _write_input

PAGE = "the endpoint answered HTTP 200 (text/html; charset=utf-8), not a chat completion: '<!DOCTYPE html> <html>"


def answer_four(request: dict) -> str:
    return "</think> \\boxed{4}"


def test_a_page_is_said_in_one_line_and_asked_again(tmp_path):
    from memento.openai_client import NotAChatCompletion, chat_completion, openai_client

    with FakeOpenAI(responder=answer_four) as server:
        client = openai_client(server.base_url, timeout=10, max_retries=0)
        request = {"model": "m", "messages": [{"role": "user", "content": "2+2?"}]}
        server.faults = ["html"] * 3
        with pytest.raises(NotAChatCompletion, match="Sign in - Corporate Proxy") as caught:
            chat_completion(client, request, retries=2)
        assert str(caught.value).startswith(PAGE) and server.requests == ["html"] * 3
        server.faults = ["html"]
        response, retries = chat_completion(client, request, retries=2)
        assert response.choices[0].message.content == answer_four(request) and retries == 1
        assert server.requests == ["html"] * 4 + ["ok"]


def test_prompted_retries_a_page_then_fails_the_problem_in_one_line(capsys):
    with FakeOpenAI(responder=answer_four) as server:
        server.faults = ["html"]
        argv = ["prompted", "--base-url", server.base_url, "--model", "m", "--prompt", "2+2?", "--json"]
        assert main([*argv, "--max-retries", "1"]) == 0
        assert json.loads(capsys.readouterr().out.splitlines()[-1])["answer"] == "\\boxed{4}"
        server.faults = ["html"] * 2
        assert main([*argv, "--max-retries", "1"]) == 1
    captured = capsys.readouterr()
    assert server.requests == ["html", "ok", "html", "html"]
    line = captured.err.splitlines()[-1]  # after the progress bar
    assert line.startswith(f"memento prompted: problem prompt: {PAGE}") and "Traceback" not in captured.err
    assert "Sign in - Corporate Proxy" in line and line.endswith("(asked 2 times)"), captured.err


@pytest.mark.parametrize("backend", ["openai", "prompted"])
def test_eval_backends_say_what_came_back(capsys, tmp_path, backend, tokenizer_dir):
    with FakeOpenAI(responder=answer_four) as server:
        server.faults = ["html"] * 20
        argv = ["eval", "--backend", backend, "--base-url", server.base_url, "--model", "m", "--benchmark", "toy"]
        flags = ["--limit", "1", "--samples", "1", "--output", str(tmp_path / "run"), "--no-progress"]
        if backend == "openai":
            flags += [
                "--modes",
                "memento",
                "--tokenizer",
                str(tokenizer_dir),
                "--geometry",
                "qwen3-8b",
                "--no-mask-delimiters",
            ]
        else:
            flags += ["--max-retries", "1", "--modes", "prompted"]
        assert main([*argv, *flags]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("memento eval: error: "), err
    assert PAGE in err and "finished samples are kept" in err
    assert len(server.requests) == (3 if backend == "openai" else 2)


def test_data_build_records_the_page_as_a_malformed_answer(tmp_path, capsys):
    data, out = tmp_path / "in.jsonl", tmp_path / "out"
    _write_input(data, 1)
    with FakeOpenAI() as server:
        server.faults = ["html"] * 2
        argv = [
            *("data", "build", "--input", str(data), "--output-dir", str(out), "--base-url", server.base_url),
            *("--model", "m", "--max-attempts", "2", "--backoff", "0.01", "--min-block-tokens", "30"),
        ]
        assert main(argv) == 1
    failure = json.loads((out / "failures.jsonl").read_text().splitlines()[0])
    text = json.dumps(failure)
    assert f"malformed answer: {PAGE}" in text and "AttributeError" not in text, text
    assert server.requests == ["html", "html"]


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "localhost:8000/v1", "http:/v1", "ftp://127.0.0.1/v1", "http://h:x"])
def test_a_base_url_that_is_not_an_http_url_is_refused_at_once(capsys, tmp_path, url):
    data = tmp_path / "in.jsonl"
    _write_input(data, 1)
    commands = [
        ["prompted", "--base-url", url, "--model", "m", "--prompt", "2+2?", "--max-retries", "0"],
        ["eval", "--backend", "openai", "--base-url", url, "--model", "m", "--benchmark", "toy"],
        ["eval", "--backend", "prompted", "--base-url", url, "--model", "m", "--benchmark", "toy"],
        ["eval", "--backend", "openai", "--baseline-base-url", url, "--model", "m", "--benchmark", "toy"],
        ["data", "build", "--input", str(data), "--output-dir", str(tmp_path / "out"), "--base-url", url],
    ]
    for argv in commands:
        flag = argv[3] if argv[0] == "eval" else argv[argv.index("--base-url")]
        code = main([*argv, "--model", "m"] if argv[0] == "data" else argv)
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and f"error: {flag} {url!r}: " in err, err
    assert not (tmp_path / "out").exists()
    from memento.openai_client import check_base_url, openai_client

    for refused in (lambda: check_base_url(url), lambda: openai_client(url, timeout=1, max_retries=0)):
        with pytest.raises(UsageError, match="--base-url"):
            refused()
    with pytest.raises(ValueError, match="--base-url"):
        PromptedConfig(base_url=url, model="m")

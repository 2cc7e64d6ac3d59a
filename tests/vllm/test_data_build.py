"""`memento data build --base-url` against a real LLM: SmolLM2-135M-Instruct served by vLLM on 127.0.0.1.

The server is `memento serve` with memento attention off (plain vLLM, its OpenAI server), and
the pipeline asks every answer's JSON schema through ``response_format`` (`--structured-output
on`: a refusal would fail the run). Three real chains of thought (the repository's traces: math,
code, science), cut to their first ~800 characters so that the whole build takes about a minute
on two cores. The tokens the build counts are the server's own (its Prometheus counters).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from memento.cli import main
from memento.data.stats import dataset_stats
from memento.format import parse_text
from tests.conftest import EXAMPLES
from tests.servers import serving

pytestmark = [pytest.mark.vllm, pytest.mark.slow]  # conversion ~25 s, server start ~80 s, build ~70 s


def _opening(thinking: str, chars: int = 700) -> str:
    """The first paragraphs of a chain of thought, about `chars` long (cut at a paragraph's end)."""
    end = thinking.find("\n\n", chars)
    return thinking[: end if 0 < end < chars + 300 else chars + 100]


def write_real_cots(path: Path) -> list[dict]:
    """Three short real chains of thought: the OpenThoughts trace (math) and two MEMENTO traces' blocks."""
    raw = json.loads((EXAMPLES / "openthoughts_example_trace.jsonl").read_text().splitlines()[0])
    rows = [
        {
            "task_id": raw["task_id"],
            "problem": raw["problem"],
            "domain": "math",
            "cot": "<think>" + _opening(raw["cot"].removeprefix("<think>").strip()) + "</think>",
        }
    ]
    for name in ("code", "science"):
        trace = json.loads((EXAMPLES / f"memento_trace_{name}.json").read_text())
        thinking = "\n\n".join(s["text"].strip() for s in trace["segments"] if s["type"] == "block")
        rows.append(
            {"task_id": f"memento-{name}", "problem": trace["problem"], "domain": name, "cot": _opening(thinking)}
        )
        rows[-1]["cot"] = "<think>" + rows[-1]["cot"] + "</think>"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows


@pytest.fixture(scope="module")
def smollm2_server(smollm2_checkpoint, tmp_path_factory):
    """(base URL, model name) of vLLM serving SmolLM2-135M-Instruct, memento attention off."""
    arguments = ["--model", str(smollm2_checkpoint), "--dtype", "float32", "--max-model-len", "4096"]
    arguments += ["--block-masking-config", '{"enable": false}']
    with serving(arguments, tmp_path_factory.mktemp("serve"), startup_s=300) as (client, base_url):
        yield base_url, client.models.list().data[0].id


def _counters(base_url: str) -> dict[str, float]:
    """vLLM's own token and request counters (Prometheus text at /metrics), summed over labels."""
    text = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=30).text
    totals = {"vllm:prompt_tokens_total": 0.0, "vllm:generation_tokens_total": 0.0, "vllm:request_success_total": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


def test_build_with_a_real_small_model_runs_every_stage_and_counts_the_servers_tokens(smollm2_server, tmp_path, capsys):
    base_url, model = smollm2_server
    rows = write_real_cots(tmp_path / "cots.jsonl")
    out = tmp_path / "out"
    before = _counters(base_url)
    start = time.perf_counter()
    code = main(
        [
            *("data", "build", "--input", str(tmp_path / "cots.jsonl"), "--output-dir", str(out)),
            *("--base-url", base_url, "--model", model, "--api-key", "none", "--structured-output", "on"),
            *("--min-block-tokens", "40", "--min-blocks", "2", "--max-blocks", "3", "--max-iterations", "1"),
            *("--max-tokens", "512", "--workers", "3", "--max-attempts", "2", "--backoff", "0.1"),
        ]
    )
    wall = time.perf_counter() - start
    output = capsys.readouterr().out
    assert code == 0, output
    assert "structured output: on (response_format json_schema, strict)" in output
    assert not (out / "failures.jsonl").exists()
    records = {r["task_id"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}
    assert sorted(records) == sorted(row["task_id"] for row in rows)
    for row in rows:
        record = records[row["task_id"]]
        thinking = row["cot"].removeprefix("<think>").removesuffix("</think>")
        assert "".join(record["sentences"]) == thinking  # the split covers the text exactly
        assert 2 <= len(record["blocks"]) <= 3 and len(record["boundary_scores"]) == len(record["sentences"]) - 1
        assert all(score in (0, 1, 2, 3) for score in record["boundary_scores"])  # the schema's enum
        assert len(record["mementos"]) == len(record["blocks"]) and all(m.strip() for m in record["mementos"])
        assert all(len(m) <= max(map(len, record["blocks"])) for m in record["mementos"])  # the schema's maxLength
        assert len(record["judge_scores"]) == len(record["blocks"]) and all(
            0 <= s <= 10 for s in record["judge_scores"]
        )
        trace = parse_text(record["text"])
        assert [b.memento for b in trace.blocks] == record["mementos"]
        assert record["usage"]["failed_calls"] == 0 and record["usage"]["calls"] >= 3  # score, compress, judge
    after = _counters(base_url)
    usage = {key: sum(r["usage"][key] for r in records.values()) for key in records[rows[0]["task_id"]]["usage"]}
    # every token the build counted is one the server says it processed, and every request is a call
    assert usage["prompt_tokens"] == after["vllm:prompt_tokens_total"] - before["vllm:prompt_tokens_total"]
    assert usage["completion_tokens"] == after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]
    assert usage["calls"] == after["vllm:request_success_total"] - before["vllm:request_success_total"]

    stats = dataset_stats(out)
    rewritten = sum(len(r["mementos_rewritten"]) for r in records.values())
    print(
        f"\nSmolLM2-135M data build: {len(records)} traces, {usage['calls']} calls, {usage['retries']} retries, "
        f"{usage['failed_calls']} failed, {usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion "
        f"tokens, {wall:.0f} s; memento/block chars median {stats['memento_to_block_chars']['p50']:.3f}, tokens "
        f"{stats['memento_to_block_tokens']:.3f}; judge scores {stats['judge_scores']['histogram']}; "
        f"{rewritten} mementos rewritten"
    )

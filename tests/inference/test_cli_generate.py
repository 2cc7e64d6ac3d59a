from __future__ import annotations

import json

import pytest

from memento.cli import main
from tests.conftest import build_tokenizer
from tests.models import save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("checkpoint")
    save_checkpoint(directory, build_tokenizer())
    return directory


def test_generate_json(checkpoint, capsys):
    code = main(
        [
            "generate",
            "--model",
            str(checkpoint),
            "--prompt",
            "add 3 and 4",
            "--max-new-tokens",
            "6",
            "--json",
            "--keep-last-n",
            "1",
        ]
    )
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert 1 <= len(record["token_ids"]) <= 6 and record["finish_reason"] in ("stop", "length")
    assert record["config"]["keep_last_n_blocks"] == 1 and record["config"]["mask_delimiters"] is False  # qwen3
    assert record["prompt_tokens"] > 3 and len(record["kv_trace"]) >= 1


def test_generate_json_records_the_seed_that_reproduces_a_sampled_run(checkpoint, capsys):
    argv = ["generate", "--model", str(checkpoint), "--prompt", "add 3 and 4", "--max-new-tokens", "12", "--json"]
    argv += ["--temperature", "1.0"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert isinstance(first["seed"], int)
    assert main([*argv, "--seed", str(first["seed"])]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["seed"] == first["seed"] and again["token_ids"] == first["token_ids"]


def test_generate_stream_from_jsonl(checkpoint, capsys, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"problem": "what is 12 + 30"}) + "\n" + json.dumps({"prompt": "done"}) + "\n")
    assert (
        main(["generate", "--model", str(checkpoint), "--file", str(prompts), "--max-new-tokens", "4", "--stream"]) == 0
    )
    captured = capsys.readouterr()
    assert captured.err.count("peak KV") == 2


def test_generate_refuses_a_model_without_memento_tokens(tmp_path, capsys):
    save_checkpoint(tmp_path, build_tokenizer(with_memento_tokens=False))
    assert main(["generate", "--model", str(tmp_path), "--prompt", "hi"]) == 2
    assert "lacks the memento tokens" in capsys.readouterr().err
    assert main(["generate", "--model", str(tmp_path / "nowhere"), "--prompt", "hi"]) == 2


def test_text_streams_incrementally_and_stops_at_stop_strings(checkpoint):
    from memento.config import MementoConfig
    from memento.inference import MementoGenerator
    from memento.inference.loading import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(checkpoint)
    generator = MementoGenerator(model, tokenizer, MementoConfig(mask_delimiters=False))
    results = []
    events = list(generator.stream("add 3 and 4", max_new_tokens=40, seed=1, temperature=1.0, results=results))
    (result,) = results
    assert "".join(e.text for e in events) == result.text
    assert result.text == tokenizer.decode(result.token_ids, skip_special_tokens=False)
    stop = result.text[len(result.text) // 2 :][:3]
    stopped = generator.generate("add 3 and 4", max_new_tokens=40, seed=1, temperature=1.0, stop=[stop])[0]
    assert stopped.finish_reason == "stop" and stop not in stopped.text
    assert result.text.startswith(stopped.text) and len(stopped.token_ids) < len(result.token_ids)

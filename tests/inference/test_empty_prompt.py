"""An empty prompt is refused (as vLLM refuses one), by `memento generate` and by `MementoGenerator`: the model would
otherwise answer the chat template alone (the toy model wrote 1,005 tokens of <think><think>... for it)."""

from __future__ import annotations

import json

import pytest

from memento.cli import main
from memento.config import MementoConfig
from memento.errors import UsageError
from memento.inference import MementoGenerator
from memento.inference.loading import load_model_and_tokenizer
from memento.toy import CHECKPOINT


@pytest.mark.parametrize("prompt", ["", "  \n"])
def test_generate_refuses_an_empty_prompt(capsys, prompt):
    assert main(["generate", "--prompt", prompt]) == 2
    err = capsys.readouterr().err
    assert err == "memento generate: error: --prompt: the prompt is empty; expected the text of a user message\n"


def test_generate_refuses_an_empty_prompt_in_a_file(capsys, tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": "sum mod 10: a:3"}) + "\n" + json.dumps({"prompt": ""}) + "\n")
    assert main(["generate", "--file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"memento generate: error: {path}:2: expected an object with a non-empty string 'prompt' or 'problem'"
    )


def test_the_generator_refuses_an_empty_prompt():
    model, tokenizer = load_model_and_tokenizer(CHECKPOINT, device="cpu")
    generator = MementoGenerator(model, tokenizer, MementoConfig(mask_delimiters=False))
    with pytest.raises(UsageError, match=r"^the prompt is empty; expected the text of a user message$"):
        generator.generate("", max_new_tokens=4)
    with pytest.raises(UsageError, match=r"^prompt 2 of 2 is empty"):
        generator.generate(["sum mod 10: a:3", " "], max_new_tokens=4)
    with pytest.raises(UsageError, match=r"^the prompt is empty"):
        list(generator.stream([""], max_new_tokens=4))
    (result,) = generator.generate(["sum mod 10: a:3"], max_new_tokens=4)
    assert 1 <= len(result.token_ids) <= 4

"""Prompt templates: the defaults, an override file, and one clear line for a bad file."""

from __future__ import annotations

import pytest

from memento.prompted import PromptedConfig, PromptedSolver, PromptFileError, load_prompts
from memento.prompted.prompts import default_prompts_text, fill


def test_defaults_state_the_format_and_the_budget():
    solver = PromptedSolver(PromptedConfig(base_url="http://127.0.0.1:9/v1", model="m", block_tokens=400))
    system, user = solver.round_messages("Is {x} > 2?", ["x is 3"], 2)
    assert "<|block_start|>" in system["content"] and "<|summary_end|>" in system["content"]
    assert "about 300 words" in system["content"] and "\\boxed{}" in system["content"]
    assert "Is {x} > 2?" in user["content"]  # a problem's own braces are never filled
    assert "1. x is 3" in user["content"] and "block 2 of at most 16" in user["content"]


def test_fill_replaces_known_names_only_in_one_pass():
    assert fill(r"{a} \frac{b}{2} {c}", {"a": "{c}", "c": 1}) == r"{c} \frac{b}{2} 1"


def test_an_override_file_replaces_its_keys_and_keeps_the_rest(tmp_path):
    path = tmp_path / "prompts.toml"
    path.write_text("plain = '''Solve: {problem}'''\nno_mementos = 'nothing yet'\n")
    templates = load_prompts(path)
    defaults = load_prompts()
    assert templates.plain == "Solve: {problem}" and templates.no_mementos == "nothing yet"
    assert templates.round == defaults.round and templates.system == defaults.system
    solver = PromptedSolver(PromptedConfig(base_url="http://127.0.0.1:9/v1", model="m", prompts=path))
    assert solver.plain_messages("2+2?") == [{"role": "user", "content": "Solve: 2+2?"}]
    assert "nothing yet" in solver.round_messages("2+2?", [], 1)[1]["content"]


def test_the_shipped_file_is_the_default():
    text = default_prompts_text()
    assert "{problem}" in text and "--prompts FILE" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("round = 'no problem here'", "key 'round': missing the placeholder {problem}"),
        ("rounds = '{problem}'", "unknown key 'rounds'"),
        ("plain = 3", "key 'plain': expected a string, got int"),
        ("plain = '''{problem}", "not valid TOML"),
    ],
)
def test_a_bad_prompt_file_is_named_with_its_key(tmp_path, content, message):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(PromptFileError, match=r"bad\.toml") as error:
        load_prompts(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_missing_prompt_file_is_one_line(tmp_path):
    with pytest.raises(PromptFileError, match=r"nope\.toml: cannot read the prompt file"):
        load_prompts(tmp_path / "nope.toml")

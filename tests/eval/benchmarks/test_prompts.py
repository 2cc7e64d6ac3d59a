"""Prompt templates: the paper's user turns, overridable by a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from memento.eval import Problem, TestCase, build_prompt, chat_messages, load_benchmark, load_template
from memento.eval.benchmarks.prompts import TEMPLATES, PromptTemplate, default_template, format_choices

CHECKPOINT = Path(__file__).resolve().parents[3] / "src" / "memento" / "toy" / "checkpoint"
CHOICE = Problem(id="c", problem="Which is {odd}?", answer="B", kind="choice", choices=("2", "3", "{4}"))


def test_default_templates_by_kind():
    math = load_benchmark("math500", limit=1, use_hub=False).problems[0]
    prompt = build_prompt(math)
    assert prompt.startswith(math.problem) and prompt.endswith("put your final answer within \\boxed{}.")
    humaneval = load_benchmark("humaneval", limit=1, use_hub=False).problems[0]
    assert default_template(humaneval).name == "code-function"
    assert f"```python\n{humaneval.problem}```" in build_prompt(humaneval)
    toy = load_benchmark("toy", limit=1).problems[0]
    assert build_prompt(toy) == toy.problem
    stdin = Problem(id="s", problem="Add.", answer="", kind="code", tests=(TestCase("1 2", "3"),))
    assert default_template(stdin).name == "code-stdin" and "standard input" in build_prompt(stdin)
    starter = Problem(**{**stdin.__dict__, "metadata": {"starter_code": "class Solution:\n    def f(self):"}})
    assert default_template(starter).name == "code-starter"
    assert build_prompt(starter).endswith("```python\nclass Solution:\n    def f(self):\n```")


def test_choices_are_listed_with_letters_and_braces_survive():
    prompt = build_prompt(CHOICE)
    assert format_choices(CHOICE.choices) == "A) 2\nB) 3\nC) {4}"
    assert prompt.startswith("Which is {odd}?\n\nA) 2\nB) 3\nC) {4}\n\n")
    assert prompt.endswith('on the last line as "Answer: X".')


def test_a_template_file_overrides_the_default(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("Q: {problem}\nOptions:\n{choices}\nReply with one letter. {problem}")
    template = load_template(path)
    assert (
        template.render(CHOICE)
        == "Q: Which is {odd}?\nOptions:\nA) 2\nB) 3\nC) {4}\nReply with one letter. Which is {odd}?"
    )
    math_only = tmp_path / "math.txt"
    math_only.write_text("{problem} Box it: \\boxed{}")
    math = Problem(id="m", problem="1+{1}", answer="2")
    assert build_prompt(math, load_template(math_only)) == "1+{1} Box it: \\boxed{}"
    with pytest.raises(ValueError, match="no \\{choices\\} placeholder for multiple-choice problem c"):
        build_prompt(CHOICE, load_template(math_only))


def test_bad_template_files_are_one_clear_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("Solve it.")
    with pytest.raises(ValueError, match=r"empty\.txt: the prompt template has no \{problem\} placeholder"):
        load_template(empty)
    with pytest.raises(ValueError, match=r"absent\.txt: cannot read the prompt template"):
        load_template(tmp_path / "absent.txt")
    with pytest.raises(ValueError, match="has no \\{problem\\} placeholder"):
        PromptTemplate("nothing")


def test_the_prompt_is_the_only_user_turn_of_a_chatml_conversation():
    from transformers import AutoTokenizer

    math = load_benchmark("math500", limit=1, use_hub=False).problems[0]
    prompt = build_prompt(math)
    messages = chat_messages(prompt)
    assert messages == [{"role": "user", "content": prompt}]
    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT)  # the embedded model's ChatML template
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
    assert set(TEMPLATES) == {"math", "choice", "code-function", "code-stdin", "code-starter", "toy"}

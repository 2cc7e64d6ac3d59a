r"""The user turn each problem is asked with (the paper's setup: the problem is the only user
turn of a ChatML conversation, no system prompt; the chat template adds the markup).

==================  ==========================================================================
template            text (placeholders in braces)
==================  ==========================================================================
math                {problem} / Please reason step by step, and put your final answer within
                    \boxed{}.
choice              {problem} / {choices} (one "A) text" line each) / Please reason step by
                    step, then give the letter of the correct choice on the last line as
                    "Answer: X".
code-function       Complete the following Python function. Give the complete function in a
                    single ```python code block. / ```python {problem}``` (HumanEval)
code-stdin          {problem} / Read the input from standard input and write the answer to
                    standard output. Give the complete program in a single ```python code block.
code-starter        {problem} / Use this starter code and give the complete solution in a
                    single ```python code block: / ```python {starter_code}```
toy                 {problem} (the toy model was trained on the bare problem)
==================  ==========================================================================

("/" is a blank line.) A code problem gets code-function when its tests are test code,
code-starter when it has starter code, else code-stdin. `load_template` reads a template file
(for ``--prompt-template``) that uses the same placeholders; ``{problem}`` is required, and a
multiple-choice problem needs ``{choices}``. Placeholders are replaced literally, so LaTeX braces
in a template or a problem need no escaping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from memento import textfiles
from memento.eval.benchmarks.problems import Problem

PLACEHOLDERS = ("{problem}", "{choices}", "{starter_code}")
_PLACEHOLDER = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS))


@dataclass(frozen=True)
class PromptTemplate:
    """A user-turn template with ``{problem}`` and optionally ``{choices}``, ``{starter_code}``."""

    text: str
    name: str = "custom"

    def __post_init__(self) -> None:
        if "{problem}" not in self.text:
            raise ValueError(f"prompt template {self.name!r} has no {{problem}} placeholder")

    def render(self, problem: Problem) -> str:
        """The user turn for `problem`."""
        if problem.kind == "choice" and "{choices}" not in self.text:
            raise ValueError(
                f"prompt template {self.name!r} has no {{choices}} placeholder for multiple-choice problem {problem.id}"
            )
        values = {
            "{problem}": problem.problem,
            "{choices}": format_choices(problem.choices),
            "{starter_code}": str(problem.metadata.get("starter_code") or ""),
        }
        # one pass, so text inserted for one placeholder is never searched for another
        return _PLACEHOLDER.sub(lambda match: values[match.group(0)], self.text)


def format_choices(choices: tuple[str, ...]) -> str:
    """``A) first`` ... one line per choice, in the (shuffled) order given."""
    return "\n".join(f"{chr(ord('A') + index)}) {choice}" for index, choice in enumerate(choices))


_CODE_BLOCK = "Give the complete {what} in a single ```python code block."

TEMPLATES: dict[str, PromptTemplate] = {
    template.name: template
    for template in (
        PromptTemplate("{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{}.", "math"),
        PromptTemplate(
            "{problem}\n\n{choices}\n\nPlease reason step by step, then give the letter of the correct choice "
            'on the last line as "Answer: X".',
            "choice",
        ),
        PromptTemplate(
            "Complete the following Python function. "
            + _CODE_BLOCK.format(what="function")
            + "\n\n```python\n{problem}```",
            "code-function",
        ),
        PromptTemplate(
            "{problem}\n\nRead the input from standard input and write the answer to standard output. "
            + _CODE_BLOCK.format(what="program"),
            "code-stdin",
        ),
        PromptTemplate(
            "{problem}\n\nUse this starter code and give the complete solution in a single ```python code block:"
            "\n\n```python\n{starter_code}\n```",
            "code-starter",
        ),
        PromptTemplate("{problem}", "toy"),
    )
}


def default_template(problem: Problem) -> PromptTemplate:
    """The template of the table above for this problem's kind and tests."""
    if problem.kind != "code":
        return TEMPLATES[problem.kind]
    if isinstance(problem.tests, str):
        return TEMPLATES["code-function"]
    return TEMPLATES["code-starter"] if problem.metadata.get("starter_code") else TEMPLATES["code-stdin"]


def build_prompt(problem: Problem, template: PromptTemplate | None = None) -> str:
    """The user turn for `problem`: `template` if given, else `default_template`."""
    return (template or default_template(problem)).render(problem)


def chat_messages(prompt: str) -> list[dict[str, str]]:
    """The conversation to send: the prompt as the only user turn, no system prompt."""
    return [{"role": "user", "content": prompt}]


def load_template(path: str | Path) -> PromptTemplate:
    """A template from a text file (UTF-8); one clear error when it lacks ``{problem}``."""
    path = Path(path)
    try:
        text = textfiles.read_text(path, error=ValueError)
    except OSError as error:
        raise ValueError(f"{path}: cannot read the prompt template ({error.strerror})") from None
    if "{problem}" not in text:
        raise ValueError(f"{path}: the prompt template has no {{problem}} placeholder")
    return PromptTemplate(text, name=str(path))

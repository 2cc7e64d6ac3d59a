"""Take the final answer out of a response: the part after ``</think>``, then the answer in it.

The reasoning (``<think>`` ... ``</think>``, blocks and mementos included) is never searched: a
``\\boxed{}`` written while thinking is not an answer. A response that opened ``<think>`` and
never closed it (cut off by the token budget; likewise a memento block with no ``</think>``) has
no answer; one with neither (a plain model) is all answer.
"""

from __future__ import annotations

import re

from memento.format import BLOCK_START, IM_END, THINK_END, THINK_START

_TRAILING_MARKERS = ("<|endoftext|>", IM_END)


def final_text(response: str) -> str:
    """The text after the last ``</think>``; "" for unclosed thinking; else `response` (stripped)."""
    if THINK_END in response:
        text = response.rsplit(THINK_END, 1)[1]
    elif THINK_START in response or BLOCK_START in response:
        return ""
    else:
        text = response
    text = text.strip()
    stripped = True
    while stripped:
        stripped = False
        for marker in _TRAILING_MARKERS:
            if text.endswith(marker):
                text, stripped = text[: -len(marker)].rstrip(), True
    return text


# ---------------------------------------------------------------------------------------------
# Math


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces, else None."""
    for match in reversed(list(re.finditer(r"\\(?:boxed|fbox)\s*\{", text))):
        depth, start = 1, match.end()
        for index in range(start, len(text)):
            if text[index] == "{":
                depth += 1
            elif text[index] == "}":
                depth -= 1
                if depth == 0:
                    return text[start:index].strip()
    return None


_FINAL_ANSWER = re.compile(r"final answer\s*(?:is)?\s*[:：]\s*(.+)", re.IGNORECASE)
_DOLLARS = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$", re.DOTALL)


def extract_math_answer(response: str) -> str | None:
    """The answer of a math response, in this order (the paper's checker):

    1. the last ``\\boxed{}``;
    2. the rest of the last line with "Final Answer:" (surrounding ``$``, ``**`` and a final
       period removed; a boxed or ``$...$`` answer inside it wins);
    3. the last ``$...$`` (or ``$$...$$``).

    Returns None when the response has none (or no final text, see `final_text`).
    """
    text = final_text(response)
    if not text:
        return None
    boxed = last_boxed(text)
    if boxed:
        return boxed
    finals = _FINAL_ANSWER.findall(text)
    if finals:
        line = finals[-1].strip()
        inner = _last_dollars(line)
        answer = inner if inner else line.strip("*").strip().rstrip(".").strip("*$ ").strip()
        if answer:
            return answer
    return _last_dollars(text)


def _last_dollars(text: str) -> str | None:
    matches = _DOLLARS.findall(text)
    for display, inline in reversed(matches):
        content = (display or inline).strip()
        if content:
            return content
    return None


def normalize_math_answer(answer: str) -> str:
    """A string key for counting votes (maj@k): spacing, ``\\left``/``\\right``, ``\\dfrac``,
    text wrappers, degree marks and a trailing period removed. Equal keys are the same answer;
    different keys may still be equivalent (see `graders.math_answer_classes`)."""
    text = answer.strip()
    for old, new in (
        ("\\left", ""),
        ("\\right", ""),
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\!", ""),
        ("\\,", ""),
        ("\\;", ""),
        ("^\\circ", ""),
        ("^{\\circ}", ""),
        ("\\%", ""),
        ("$", ""),
    ):
        text = text.replace(old, new)
    text = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"\s+", "", text).rstrip(".")
    return text


# ---------------------------------------------------------------------------------------------
# Multiple choice


def extract_choice(response: str, letters: str = "ABCD") -> str | None:
    """The chosen letter: the last ``\\boxed{X}``, else the last "answer ... X" phrase, else the
    last standalone letter of `letters` (not part of a word: "(C)", "C.", "**C**" count; the
    "A" of "A train" does too, which is why the first two are preferred)."""
    text = final_text(response)
    if not text:
        return None
    allowed = f"[{re.escape(letters)}]"
    boxed = last_boxed(text)
    if boxed:
        found = re.findall(rf"(?<![A-Za-z]){allowed}(?![A-Za-z])", re.sub(r"\\text\w*\{([^{}]*)\}", r"\1", boxed))
        if len(found) == 1:
            return found[0]
    phrases = re.findall(rf"(?i:answer)(?:\s+is)?\s*[:：]?\s*\**\s*\(?({allowed})\)?(?![A-Za-z0-9])", text)
    if phrases:
        return phrases[-1]
    standalone = re.findall(rf"(?<![A-Za-z0-9_]){allowed}(?![A-Za-z0-9_])", text)
    return standalone[-1] if standalone else None


# ---------------------------------------------------------------------------------------------
# Code


_FENCE = re.compile(r"```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)


def extract_code(response: str) -> str | None:
    """The last ```python fenced block of the final text (any fenced block when none is tagged
    python); None when there is no fenced block."""
    text = final_text(response)
    blocks = _FENCE.findall(text)
    if not blocks:
        return None
    python = [code for language, code in blocks if language.lower() in ("python", "py", "python3")]
    return (python or [code for _, code in blocks])[-1]

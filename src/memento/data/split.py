"""Split a chain of thought into sentences: the candidate block boundaries.

Sentences are spans of the original text (joined, they give it back exactly), so blocks built
from them reproduce the trace character for character. Kept whole: fenced and indented code,
display and inline math (``$$..$$``, ``\\[..\\]``, ``$..$``, ``\\(..\\)``), parentheses and list
items. A display ends a sentence when a line break follows it. No split after abbreviations or
inside numbers. Then merged: a sentence ending in ':' with the
next; continuation openers (Therefore, Thus, So, Hence) with the previous; fragments under
`min_tokens`; consecutive math lines.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

# Regions inside which no boundary may fall. Displays and code are found on their own, before list
# items, so that an item line never hides the opening delimiter of a display it starts (the closing
# one would then open a display that swallows the rest of the text). An unclosed fence runs to the
# end; unclosed math stops at the paragraph's end.
_END_OF_MATH = r"(?:(?=\n[ \t]*\n)|\Z)"
_DISPLAYS = re.compile(
    r"```.*?(?:```|\Z)"  # fenced code
    r"|(?:(?<=\n\n)|\A)(?:(?: {4}|\t)[^\n]*(?:\n|\Z))+"  # indented code after a blank line
    rf"|\$\$.*?(?:\$\$|{_END_OF_MATH})"  # display math
    rf"|\\\[.*?(?:\\\]|{_END_OF_MATH})"
    rf"|\\\(.*?(?:\\\)|{_END_OF_MATH})"  # inline math
    r"|(?<!\\)\$[^$\n]+?\$",
    re.DOTALL,
)
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d+[.)])[ \t]+[^\n]*", re.MULTILINE)  # one item line, kept whole
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n\s*|(?:(?<=\$\$)|(?<=\\\])|(?<=```))\n\s*")
_ABBREVIATIONS = frozenset(
    [
        "e.g",
        "i.e",
        "etc",
        "vs",
        "cf",
        "al",
        "fig",
        "eq",
        "eqs",
        "approx",
        "resp",
        "dr",
        "mr",
        "mrs",
        "ms",
        "prof",
        "st",
        "no",
        "nos",
        "vol",
        "pp",
        "ch",
        "sec",
        "min",
        "max",
    ]
)
_CONTINUATION = re.compile(r"^\s*(?:Therefore|Thus|So|Hence)\b")
_MATH_LINE = re.compile(r"^\s*(?:\$\$|\\\[|[-+*/=()\d\s^_{}\\a-zA-Z]*=)")


def approximate_tokens(text: str) -> int:
    """About four characters a token (the authors' own approximation)."""
    return max(1, round(len(text.strip()) / 4)) if text.strip() else 0


@dataclass(frozen=True)
class SplitResult:
    """Sentences as spans of `text`; `candidate_boundaries` = len(sentences) - 1."""

    text: str
    spans: list[tuple[int, int]]

    @property
    def sentences(self) -> list[str]:
        return [self.text[a:b] for a, b in self.spans]

    @property
    def candidate_boundaries(self) -> int:
        return max(len(self.spans) - 1, 0)


_PARENTHESIS_EVENTS = re.compile(r"[()]|\n(?=\n)")  # a bracket, or the first break of a paragraph break
_WORD_BEFORE_PERIOD = re.compile(r"(\S+)\.$")


class _Protected:
    """The regions no boundary may fall inside, as sorted disjoint open intervals: `inside` is a bisection."""

    def __init__(self, text: str) -> None:
        spans = [m.span() for m in _DISPLAYS.finditer(text)] + [m.span() for m in _LIST_ITEM.finditer(text)]
        depth, start = 0, 0
        # parentheses: a (...) group within one paragraph stays whole
        for match in _PARENTHESIS_EVENTS.finditer(text):
            char, index = match.group(), match.start()
            if char == "(":
                if depth == 0:
                    start = index
                depth += 1
            elif char == ")" and depth:
                depth -= 1
                if depth == 0:
                    spans.append((start, index + 1))
            elif char == "\n":
                depth = 0  # an unclosed parenthesis does not swallow the next paragraph
        merged: list[list[int]] = []
        for a, b in sorted(spans):
            if merged and a < merged[-1][1]:  # overlapping open intervals (touching ones share no point)
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        self.starts = [a for a, _ in merged]
        self.ends = [b for _, b in merged]

    def inside(self, position: int) -> bool:
        index = bisect.bisect_left(self.starts, position) - 1  # the last interval starting before `position`
        return index >= 0 and position < self.ends[index]


def _is_abbreviation(text: str, end: int) -> bool:
    """True when the period ending at `end` belongs to an abbreviation, an initial or a number."""
    start = max(end - 64, 0)  # look back only as far as the word reaches: linear in the text overall
    word = _WORD_BEFORE_PERIOD.search(text, start, end)
    while word is not None and word.start() == start > 0:
        start = max(start - 4096, 0)
        word = _WORD_BEFORE_PERIOD.search(text, start, end)
    if not word:
        return False
    token = word.group(1).lower().lstrip("(\"'")
    return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()) or token.replace(".", "") in _ABBREVIATIONS


def split_sentences(
    text: str, *, count_tokens: Callable[[str], int] = approximate_tokens, min_tokens: int = 5
) -> SplitResult:
    """Split `text` into sentence spans covering it exactly, then apply the merge rules."""
    protected = _Protected(text)
    cuts = []
    for match in _SENTENCE_END.finditer(text):
        position = match.end()
        if position >= len(text) or protected.inside(match.start()) or protected.inside(position - 1):
            continue
        if "\n\n" not in match.group() and _is_abbreviation(text, match.start()):
            continue
        cuts.append(position)
    bounds = [0, *cuts, len(text)]
    spans = [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
    return SplitResult(text, _merge(text, spans, count_tokens, min_tokens))


def _merge(
    text: str, spans: list[tuple[int, int]], count_tokens: Callable[[str], int], min_tokens: int
) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        sentence = text[start:end]
        if merged:
            previous = text[merged[-1][0] : merged[-1][1]]
            join = (
                previous.rstrip().endswith(":")
                or _CONTINUATION.match(sentence) is not None
                or count_tokens(previous) < min_tokens
                or (_is_math_line(previous) and _is_math_line(sentence))
            )
            if join:
                merged[-1] = (merged[-1][0], end)
                continue
        merged.append((start, end))
    if len(merged) > 1 and count_tokens(text[merged[-1][0] : merged[-1][1]]) < min_tokens:
        last = merged.pop()
        merged[-1] = (merged[-1][0], last[1])
    return merged


def _is_math_line(sentence: str) -> bool:
    stripped = sentence.strip()
    if stripped.startswith(("$$", "\\[")):
        return True
    letters = sum(c.isalpha() for c in stripped)
    return "=" in stripped and letters <= len(stripped) * 0.3

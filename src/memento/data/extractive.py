"""The offline memento: extracted from its block, keeping what the next block needs, at the paper's compression.

A memento must keep results, equations, decisions and the state the reasoning continues from, and
drop narration. Offline that means choosing pieces of the block itself:

1. units: each sentence with its filler stripped ("Okay, so", "Hmm", "Let me see", ...), and as
   shorter alternatives its clauses that carry a value, the equations inside it ("48/2 = 24", an
   inline ``\\( ... \\)`` / ``$...$`` with a relation), and those with a chain ``a = b = c`` cut to
   ``a = c``;
2. a score per sentence: a result (a relation with a value, ``\\boxed``, "the answer", "therefore"),
   a decision ("fails", "instead", "must", "correct", ...), numbers, and position (the block's
   last sentences hold the state the next block starts from);
3. best first, each sentence enters in its longest form that fits the budget; until the
   memento reaches the target (a quarter into [`min_ratio`, `max_ratio`] of the block's characters),
   never past `max_ratio` (when no form of any sentence fits, the best one's end is kept).

The chosen pieces keep the block's order, joined by "; ".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FILLER = re.compile(
    r"^\s*(?:(?:Okay|OK|Hmm+|Wait|Alright|Well|Now|So|Right|Yes|Yeah|Actually|First|Also|Oh|Ah)\b[,.!]?\s*"
    r"|(?:Let me|Let's|I need to|I should|I'll|We need to|We can) "
    r"(?:see|think|check|recall|start|note)\b[^,.:]*[,.:]?\s*"
    r"|(?:I think|I guess|It seems|It looks like)(?: that)?,?\s+)+",
    re.IGNORECASE,
)
_RESULT = re.compile(
    r"\\boxed|\banswer\b|\btherefore\b|\bthus\b|\bhence\b|\bso (?:the|we|x|it)\b|\bwe (?:get|have|obtain|find)\b"
    r"|\bgives\b|\bequals?\b|\bresult\b|\bconclude|\bin total\b|\baltogether\b",
    re.IGNORECASE,
)
_DECISION = re.compile(
    r"\b(?:fails?|failed|doesn't work|does not work|wrong|mistake|incorrect|correct|instead|must|cannot|can't|"
    r"impossible|invalid|valid|works|choose|use|approach|case|contradiction|consistent|verified|checks? out)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d")
_INLINE_MATH = re.compile(
    r"\\\((.+?)\\\)|\$\$(.+?)\$\$|\\\[(.+?)\\\]|(?<![\\$])\$(\S[^$\n]*?(?<=\S))\$(?!\d)", re.DOTALL
)
"""Inline math; a `$..$` around spaces or before a digit is money ("$1000*7 = $7000"), not math."""
_MATH_TOKEN = r"(?:\$?\d[\d,.]*%?|\b[a-zA-Z]\b|\\[a-zA-Z]+|[()\[\]{}+\-*/^×÷·_']|[ \t])"
# starts at a number, a one-letter variable (not "a" or "I") or a bracket; a unit may follow a number ("3 years * 12")
_PLAIN_EQUATION = re.compile(
    rf"(?<![\w\\'])(?:\$?\d|\b(?![aAI]\b)[a-zA-Z]\b|[(\\])(?:{_MATH_TOKEN}|(?<=\d )[a-zA-Z]+|(?<=/)[a-zA-Z]+)*?"
    rf"(?:=|≈|≤|≥|<|>){_MATH_TOKEN}+"
)
_RELATION = re.compile(r"=|≈|≤|≥|\\le|\\ge|<|>|\\neq")
_CLAUSE_END = re.compile(r"[,;:]\s+|\s+(?=(?:so|and|which|giving|then|but)\b)")
_CLAUSE_FILLER = re.compile(
    r"^(?:so|and|which|giving|then|but)\b\s*(?:(?:that's|that is|it's|we get|we have)\s+)?", re.I
)


@dataclass(frozen=True)
class _Unit:
    index: int  # the sentence's place in the block
    forms: tuple[str, ...]  # longest first: the sentence (filler stripped), its clauses with values, its equations
    score: float


def _strip_filler(sentence: str) -> str:
    text = " ".join(sentence.split())
    stripped = _FILLER.sub("", text).strip()
    stripped = stripped[:1].upper() + stripped[1:] if stripped else ""
    return stripped if len(stripped) >= 3 else text


def _collapse(equation: str) -> str:
    """A chain ``a = b = ... = z`` as its two ends ``a = z`` (inline math delimiters kept)."""
    parts = _RELATION.split(equation)
    if len(parts) < 3:
        return equation
    relations = _RELATION.findall(equation)
    head, tail = parts[0], parts[-1]
    return f"{head.rstrip()} {relations[-1]} {tail.lstrip()}" if head.strip() else equation


def _clauses(sentence: str) -> str:
    """The sentence's clauses that carry a value or a relation, their connectives dropped."""
    kept = [_CLAUSE_FILLER.sub("", c.strip()) for c in _CLAUSE_END.split(sentence)]
    return ", ".join(c.rstrip(" .") for c in kept if c and (_NUMBER.search(c) or _RELATION.search(c)))


def _forms(sentence: str) -> tuple[str, ...]:
    """Ways to keep a sentence, longest first, each at most as long as the one before."""
    equations = _equations(sentence)
    collapsed = ", ".join(_collapse(e) for e in equations.split(", ")) if equations else ""
    forms: list[str] = []
    for form in (_strip_filler(sentence), _clauses(sentence), equations, collapsed):
        if form and form not in forms and (not forms or len(form) < len(forms[-1])):
            forms.append(form)
    return tuple(forms)


def _equations(sentence: str) -> str:
    """The relations written in `sentence`, as they are written, joined by ", "."""
    found = []
    for match in _INLINE_MATH.finditer(sentence):
        inner = next(group for group in match.groups() if group is not None)
        if _RELATION.search(inner):
            found.append(match.group(0).strip())
    rest = _INLINE_MATH.sub(" ", sentence)
    for match in _PLAIN_EQUATION.finditer(rest):
        equation = " ".join(match.group(0).split()).strip(" ,;:").rstrip(".")
        sides = _RELATION.split(equation)
        if len(equation) >= 3 and all(side.strip() for side in sides) and _NUMBER.search(equation):
            found.append(equation)
    return ", ".join(found)


def _score(sentence: str, index: int, count: int) -> float:
    score = 0.0
    if _RESULT.search(sentence):
        score += 3.0
    if _RELATION.search(sentence) and _NUMBER.search(sentence):
        score += 2.0
    if _DECISION.search(sentence):
        score += 1.5
    if _NUMBER.search(sentence):
        score += 1.0
    if sentence.rstrip().endswith("?"):
        score -= 1.5  # a question asked is not yet a result
    score += 2.0 * (index + 1) / count  # later sentences: the state the next block continues from
    return score


def _cut(text: str, limit: int) -> str:
    """`text` within `limit` characters: its end (where a result is written) from a word on, after an ellipsis."""
    if len(text) <= limit:
        return text
    tail = text[-max(limit - 1, 1) :]
    cut = tail.split(" ", 1)[1] if " " in tail[:-1] else tail
    return "…" + cut.lstrip(" ,;:")


def compress_extractive(block: str, *, ratios: tuple[float, float] = (0.15, 0.25)) -> str:
    """An offline memento of `block`: its results, equations and decisions at `ratios` (min, max) of its characters."""
    from memento.data.split import split_sentences

    low, high = ratios
    if not 0 < low <= high <= 1:
        raise ValueError(f"ratios: expected 0 < min <= max <= 1, got {ratios!r}")
    sentences = [s for s in (piece.strip() for piece in split_sentences(block).sentences) if s]
    if not sentences:
        return block.strip()
    size = len(block.strip())
    # the target sits a quarter into the range: the piece that crosses it lands inside, about mid-range
    limit, target = max(int(size * high), 1), size * (low + (high - low) / 4)
    units = [_Unit(i, _forms(s), _score(s, i, len(sentences))) for i, s in enumerate(sentences)]
    chosen: dict[int, str] = {}
    separator = len("; ")

    def length() -> int:
        return sum(map(len, chosen.values())) + separator * max(len(chosen) - 1, 0)

    for unit in sorted(units, key=lambda u: (-u.score, -u.index)):
        if length() >= target:
            break
        room = limit - length() - (separator if chosen else 0)
        for text in unit.forms:
            if len(text) <= room:
                chosen[unit.index] = text
                break
    if not chosen:  # not even one unit fits: the best one's shortest form, cut at a word
        best = max(units, key=lambda u: (u.score, u.index))
        chosen[best.index] = _cut(best.forms[-1], limit)
    return "; ".join(chosen[index] for index in sorted(chosen))

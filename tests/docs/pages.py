"""The code blocks of the README and of every docs page, with their markers.

A fenced block is *run* when its language is `bash` or `python`, unless an HTML comment
`<!-- not-run: REASON -->` stands right before it (blank lines between are allowed): then it is
*marked*, shown to the reader with its expected output, and its `memento` commands are still parsed.
A `text` block after `<!-- expected-output -->` holds lines the previous run block must print.
Every fence needs a language, so nothing escapes by being unlabeled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN_LANGUAGES = ("bash", "python")
SHOWN_LANGUAGES = ("text", "json", "toml", "yaml")
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+)(?P<language>[\w+-]*)\s*$")
_NOT_RUN = re.compile(r"^<!-- not-run: (?P<reason>.+?) -->$")
_EXPECTED = "<!-- expected-output -->"


@dataclass(frozen=True)
class Block:
    page: str  # path relative to the repository root
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    not_run: str | None = None  # the marker's reason
    expected_output: bool = False

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and self.not_run is None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """README.md, then every docs page in name order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def read_blocks(path: Path) -> tuple[list[Block], list[str]]:
    """The page's fenced blocks in order, and its problems (unlabeled fence, dangling or misplaced marker)."""
    page = str(path.relative_to(ROOT))
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    problems: list[str] = []
    reason: str | None = None
    expected = False
    marker_line = 0
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        fence = _FENCE.match(lines[index])
        if (match := _NOT_RUN.match(stripped)) or stripped == _EXPECTED:
            if reason is not None or expected:
                problems.append(f"{page}:{marker_line}: a marker not followed by a code block")
            reason, expected, marker_line = (match["reason"], False, index + 1) if match else (None, True, index + 1)
        elif fence:
            indent, closing, opening = fence["indent"], fence["fence"], index + 1
            body: list[str] = []
            index += 1
            while index < len(lines) and lines[index].strip() != closing:
                body.append(lines[index][len(indent) :] if lines[index].startswith(indent) else lines[index])
                index += 1
            language = fence["language"]
            if language not in RUN_LANGUAGES + SHOWN_LANGUAGES:
                problems.append(
                    f"{page}:{opening}: a code block needs a language from {RUN_LANGUAGES + SHOWN_LANGUAGES}"
                )
            if reason is not None and language not in RUN_LANGUAGES:
                problems.append(f"{page}:{marker_line}: not-run marker before a {language or 'unlabeled'} block")
            if expected and language != "text":
                problems.append(
                    f"{page}:{marker_line}: expected-output marker before a {language or 'unlabeled'} block"
                )
            blocks.append(Block(page, opening, language, "\n".join(body) + "\n", reason, expected))
            reason, expected = None, False
        elif stripped and (reason is not None or expected):
            problems.append(f"{page}:{marker_line}: a marker not followed by a code block")
            reason, expected = None, False
        index += 1
    if reason is not None or expected:
        problems.append(f"{page}:{marker_line}: a marker at the end of the page")
    return blocks, problems


def all_blocks() -> list[Block]:
    return [block for path in pages() for block in read_blocks(path)[0]]

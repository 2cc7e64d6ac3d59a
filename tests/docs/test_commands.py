"""Every `memento` command the README and the docs show parses with today's flags, run or marked.

The examples test runs the unmarked blocks; this one also covers the marked ones (a GPU, an
endpoint, hours), so a renamed or removed flag fails the suite wherever it is documented. Python
blocks that are not run must still compile and import only names that exist.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import shlex

import pytest

from memento.cli import COMMANDS, build_parser, split_passthrough
from tests.docs.pages import Block, all_blocks, pages, read_blocks

OPERATORS = {"|", "||", "&&", ";", "&", "(", ")"}


def memento_commands(block: Block) -> list[list[str]]:
    """argv of each `memento ...` / `python -m memento.cli ...` in a bash block (continuations joined)."""
    commands = []
    for line in block.code.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
        for start, token in enumerate(tokens):
            if token == "memento" or (token == "memento.cli" and start and tokens[start - 1] == "-m"):
                argv = []
                for word in tokens[start + 1 :]:
                    if word in OPERATORS:
                        break
                    argv.append(word)
                commands.append(argv)
    return commands


def _documented() -> list[tuple[str, list[str]]]:
    return [
        (f"{block.where} {shlex.join(argv)}"[:140], argv)
        for block in all_blocks()
        if block.language == "bash"
        for argv in memento_commands(block)
    ]


def test_every_page_reads_cleanly() -> None:
    problems = [problem for path in pages() for problem in read_blocks(path)[1]]
    assert not problems, "\n".join(problems)


def test_every_command_is_documented() -> None:
    documented = {argv[0] for _, argv in _documented() if argv}
    assert {command.NAME for command in COMMANDS} <= documented


@pytest.mark.parametrize(("where", "argv"), _documented(), ids=[where for where, _ in _documented()])
def test_documented_invocation_parses(where: str, argv: list[str]) -> None:
    argv, passthrough = split_passthrough(argv)
    if argv in ([], ["--help"]) or argv[-1:] == ["--help"]:
        return  # `memento --help` / `memento CMD --help`: argparse prints and exits, nothing to check
    args = build_parser().parse_args(argv)  # exits (a test failure) on an unknown or malformed flag
    assert args.command == argv[0] and callable(args.run)
    assert not passthrough or hasattr(args, "passthrough")


def _marked_python() -> list[Block]:
    return [block for block in all_blocks() if block.language == "python" and block.not_run]


@pytest.mark.parametrize("block", _marked_python(), ids=lambda block: block.where)
def test_marked_python_compiles_and_its_imports_exist(block: Block) -> None:
    tree = ast.parse(block.code, filename=block.where)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "memento":
            if node.module.startswith("memento.vllm"):
                pytest.importorskip("vllm", reason="the vllm extra")
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{block.where}: {node.module} has no {alias.name}"


def _named_in_prose() -> list[str]:
    """Every dotted `memento.x.y` name the README and the docs mention, in text or code (a file name such
    as `.memento.lock` or `runs/memento.json` is not one: `memento` there follows a dot or a slash)."""
    names = set()
    for path in pages():
        names |= set(re.findall(r"(?<![\w./])memento(?:\.[A-Za-z_]\w*)+", path.read_text(encoding="utf-8")))
    return sorted(name for name in names if not name.startswith("memento.vllm"))  # vllm: the extra, tests/vllm


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent that is a module, not a package
        return False


@pytest.mark.slow
@pytest.mark.docs
def test_every_dotted_name_in_the_docs_exists() -> None:
    """A module moved or a class renamed leaves no dangling `memento.x.Y` on any page."""
    missing = []
    for name in _named_in_prose():
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            if _is_module(".".join(parts[:cut])):
                target = importlib.import_module(".".join(parts[:cut]))
                for attribute in parts[cut:]:
                    target = getattr(target, attribute, None)
                if target is None:
                    missing.append(name)
                break
    assert not missing, f"named in the docs but not in the code: {missing}"

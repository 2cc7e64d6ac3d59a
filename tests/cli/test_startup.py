"""`--help` stays fast: no command's help loads the model stack (torch, transformers, TRL, vLLM, ...).

What is asserted is which modules a `--help` imports (deterministic), plus a loose wall-clock bound for the
subprocess (generous for a loaded 2-core machine); the import set is what keeps help under ~1 s here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

HEAVY = ("torch", "transformers", "trl", "vllm", "datasets", "peft", "accelerate", "deepspeed", "matplotlib")

# `memento train --help` lists every transformers.TrainingArguments field (generated from the dataclass, as
# TRL's CLIs do), so it loads what `transformers.TrainingArguments` loads; not the Trainer, TRL or vLLM.
TRAIN_NEEDS = {"torch", "transformers", "accelerate", "peft"}

PROBE = """
import contextlib, io, json, sys
from memento.cli import build_parser
words = sys.argv[1:]
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        build_parser(words[:1]).parse_args([*words, "--help"])
    except SystemExit:
        pass
print(json.dumps({"help": out.getvalue(), "modules": sorted(m for m in sys.modules if "." not in m)}))
"""


def _commands() -> list[str]:
    """Every command and subcommand of `memento`, as typed (e.g. "eval view")."""
    from memento.cli import COMMANDS, build_parser

    parser = build_parser()
    found = [""]
    top = next(a for a in parser._actions if a.dest == "command")
    for command in COMMANDS:
        found.append(command.NAME)
        sub = top.choices[command.NAME]
        for action in sub._actions:
            if action.choices and action.dest.endswith("_command"):
                found += [f"{command.NAME} {name}" for name in action.choices]
    return found


@pytest.mark.parametrize("command", _commands())
def test_help_never_loads_the_model_stack(command: str) -> None:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *command.split()], capture_output=True, text=True, timeout=120, check=True
    )
    seconds = time.perf_counter() - started
    report = json.loads(done.stdout.splitlines()[-1])
    assert "usage: memento" in report["help"]
    loaded = set(report["modules"]) & set(HEAVY)
    allowed = TRAIN_NEEDS if command == "train" else set()
    assert loaded <= allowed, f"`memento {command} --help` imports {sorted(loaded - allowed)}"
    assert seconds < (60 if command == "train" else 15), f"`memento {command} --help` took {seconds:.1f} s"

"""Prompted mode: memento for any OpenAI-compatible chat model, done by the client.

Each round the model sees the problem and its mementos, writes one block closed by a memento;
the client keeps the memento and drops the block, so the context sent stays bounded by
prompt + mementos + one block. `PromptedSolver(config).solve(problem) -> PromptedResult` is the
entry point for other code (thread-safe); `run_prompted(options)` is the `memento prompted` command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memento.lazy import lazy_exports

_EXPORTS = {
    "ChatClient": "client",
    "Completion": "client",
    "EndpointError": "client",
    "PromptedConfig": "config",
    "PromptedOptions": "config",
    "PromptedSolver": "loop",
    "ResultLog": "output",
    "Problem": "problems",
    "ProblemSourceError": "problems",
    "load_problems": "problems",
    "read_problem_file": "problems",
    "PromptFileError": "prompts",
    "PromptTemplates": "prompts",
    "default_prompts_text": "prompts",
    "load_prompts": "prompts",
    "Reply": "reply",
    "read_reply": "reply",
    "FALLBACK_KINDS": "result",
    "Bill": "result",
    "Fallback": "result",
    "PlainResult": "result",
    "PromptedResult": "result",
    "run_prompted": "runner",
    "solve_problems": "runner",
}
"""Public name -> the submodule defining it, loaded on first use (so importing this package stays light)."""

__all__ = [
    "FALLBACK_KINDS",
    "Bill",
    "ChatClient",
    "Completion",
    "EndpointError",
    "Fallback",
    "PlainResult",
    "Problem",
    "ProblemSourceError",
    "PromptFileError",
    "PromptTemplates",
    "PromptedConfig",
    "PromptedOptions",
    "PromptedResult",
    "PromptedSolver",
    "Reply",
    "ResultLog",
    "default_prompts_text",
    "load_problems",
    "load_prompts",
    "read_problem_file",
    "read_reply",
    "run_prompted",
    "solve_problems",
]

if TYPE_CHECKING:
    from memento.prompted.client import ChatClient, Completion, EndpointError
    from memento.prompted.config import PromptedConfig, PromptedOptions
    from memento.prompted.loop import PromptedSolver
    from memento.prompted.output import ResultLog
    from memento.prompted.problems import Problem, ProblemSourceError, load_problems, read_problem_file
    from memento.prompted.prompts import PromptFileError, PromptTemplates, default_prompts_text, load_prompts
    from memento.prompted.reply import Reply, read_reply
    from memento.prompted.result import FALLBACK_KINDS, Bill, Fallback, PlainResult, PromptedResult
    from memento.prompted.runner import run_prompted, solve_problems


__getattr__ = lazy_exports(__name__, _EXPORTS)

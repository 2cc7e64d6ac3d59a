"""Options of prompted mode: `PromptedConfig` (one solver: endpoint, budgets, sampling, prompts)
and `PromptedOptions` (a run of `memento prompted`: inputs, output, concurrency).

Every field carries its command-line help in ``metadata["help"]``; the command's flags are
generated from these dataclasses, so each default lives here only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from memento.openai_client import check_base_url


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class PromptedConfig:
    """One prompted-mode solver: which endpoint, how long a block, how many rounds."""

    base_url: str = field(metadata=_help("OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1"))
    model: str = field(metadata=_help("model name the endpoint serves"))
    api_key: str | None = field(
        default=None, metadata=_help("API key (default: $OPENAI_API_KEY, else 'none' for local servers)")
    )
    block_tokens: int = field(default=1024, metadata=_help("token budget of one reasoning block (max_tokens)"))
    memento_tokens: int = field(
        default=256, metadata=_help("token budget of one memento (added to a round's max_tokens; the follow-up's)")
    )
    answer_tokens: int = field(default=1024, metadata=_help("token budget of the final-answer request"))
    max_rounds: int = field(default=16, metadata=_help("blocks at most; then the final answer is requested"))
    plain_max_tokens: int | None = field(
        default=None,
        metadata=_help("token budget of the plain chain-of-thought call (default: max_rounds x block_tokens)"),
    )
    temperature: float = field(default=0.0, metadata=_help("sampling temperature (0 = greedy)"))
    top_p: float | None = field(default=None, metadata=_help("nucleus sampling (default: the server's)"))
    stop_at_memento_end: bool = field(
        default=True, metadata=_help("send <|summary_end|> as a stop string so a round ends with its memento")
    )
    prompts: Path | None = field(
        default=None, metadata=_help("TOML file overriding the prompts (see memento/prompted/default_prompts.toml)")
    )
    timeout: float = field(default=600.0, metadata=_help("seconds per HTTP request before it is retried"))
    max_retries: int = field(
        default=6, metadata=_help("retries per call on 429, 5xx, timeouts and dropped connections (with backoff)")
    )

    def __post_init__(self) -> None:
        if not self.base_url:
            raise ValueError("base_url: expected an endpoint URL such as http://127.0.0.1:8000/v1")
        check_base_url(self.base_url)
        if not self.model:
            raise ValueError("model: expected the name of a model the endpoint serves")
        for name in ("block_tokens", "memento_tokens", "answer_tokens", "max_rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if self.plain_max_tokens is not None and self.plain_max_tokens < 1:
            raise ValueError(f"plain_max_tokens: expected an integer >= 1, got {self.plain_max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature: expected >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p: expected a value in (0, 1], got {self.top_p}")
        if self.timeout <= 0:
            raise ValueError(f"timeout: expected seconds > 0, got {self.timeout}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries: expected an integer >= 0, got {self.max_retries}")
        if self.prompts is not None:
            self.prompts = Path(self.prompts)

    @property
    def plain_budget(self) -> int:
        """Token budget of the plain call: as many reasoning tokens as all rounds together."""
        return self.plain_max_tokens or self.max_rounds * self.block_tokens


@dataclass
class PromptedOptions(PromptedConfig):
    """A run of `memento prompted`: the solver's options plus where problems come from and go."""

    prompt: str | None = field(default=None, metadata=_help("one problem, as text"))
    file: Path | None = field(
        default=None, metadata=_help("problems: JSONL of {id, problem} per line, or a text file holding one problem")
    )
    benchmark: str | None = field(
        default=None,
        metadata=_help("a benchmark by name (math500, gsm8k, aime24, ..., toy; as memento eval) or a table file"),
    )
    limit: int | None = field(default=None, metadata=_help("solve only the first N problems"))
    output: Path | None = field(
        default=None, metadata=_help("JSONL of results, appended per problem; a rerun skips the ids already there")
    )
    concurrency: int = field(default=4, metadata=_help("problems solved at the same time"))
    plain: bool = field(
        default=False, metadata=_help("also make one plain chain-of-thought call per problem, for comparison")
    )
    json: bool = field(default=False, metadata=_help("print one JSON object per problem on stdout, in input order"))

    def __post_init__(self) -> None:
        super().__post_init__()
        given = [name for name in ("prompt", "file", "benchmark") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "expected exactly one of --prompt, --file, --benchmark"
                + (f" (got {', '.join('--' + g for g in given)})" if given else "")
            )
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit: expected an integer >= 1, got {self.limit}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency: expected an integer >= 1, got {self.concurrency}")
        for name in ("file", "output"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, Path(value))

    def solver_config(self) -> PromptedConfig:
        """The solver's part of these options."""
        return PromptedConfig(**{f.name: getattr(self, f.name) for f in fields(PromptedConfig)})

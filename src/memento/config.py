"""`MementoConfig`: the options of memento attention, named as the authors' vLLM `BlockMaskingConfig`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# mask_delimiters as each model family was trained in the paper (Phi-4 masks the delimiters too).
MASK_DELIMITERS_BY_MODEL_TYPE: dict[str, bool] = {
    "qwen2": False,
    "qwen3": False,
    "qwen3_moe": False,
    "olmo2": False,
    "olmo3": False,
    "llama": False,
    "phi3": True,
    "phi4": True,
}


def default_mask_delimiters(model_type: str) -> bool:
    """The paper's `mask_delimiters` for a Hugging Face `model_type`; False when the family is unknown."""
    return MASK_DELIMITERS_BY_MODEL_TYPE.get(model_type, False)


@dataclass(frozen=True)
class MementoConfig:
    """Which tokens a memento model may attend to, and when evicted blocks leave the cache.

    Attributes:
        enable: apply memento attention at all; False is plain causal attention.
        keep_last_n_blocks: 0 evicts every block right after its memento; N > 0 keeps the N most
            recently completed blocks visible; -1 never evicts.
        mask_delimiters: also hide ``<|block_start|>``/``<|block_end|>`` (Phi-4) or keep them
            visible (Qwen3, Olmo 3). Required when enabled: the choice must match training.
        compact_on_summary_end: physically free evicted KV; False hides it from attention but
            keeps it in memory (an ablation / debugging aid; attention is identical).
        require_assistant_section: memento tokens before the assistant turn (in the prompt) are
            ordinary text.
        restart_mode: the paper's dual-stream ablation: evict the block with its delimiters, then
            recompute the memento's KV without the block visible. Needs keep_last_n_blocks = 0.
        keep_last_block_for_answer: defer evicting the most recent block until the next block
            starts, so that an answer after ``</think>`` still sees the last block.
        max_block_tokens: 0 = no cap; otherwise ``<|block_end|>`` is forced when a block's
            reasoning reaches this many tokens.
        debug: log every eviction.
    """

    enable: bool = field(default=True, metadata={"help": "apply memento attention at all"})
    keep_last_n_blocks: int = field(
        default=0,
        metadata={
            "flag": "--keep-last-n",
            "help": "completed blocks kept visible (0 = evict each block after its memento, -1 = never evict)",
        },
    )
    mask_delimiters: bool | None = field(
        default=None, metadata={"help": "also evict <|block_start|>/<|block_end|> (must match training)"}
    )
    compact_on_summary_end: bool = field(default=True, metadata={"help": "physically free evicted KV"})
    require_assistant_section: bool = field(
        default=True, metadata={"help": "memento tokens in the prompt (before the assistant turn) are plain text"}
    )
    restart_mode: bool = field(default=False, metadata={"help": "recompute each memento without its block"})
    keep_last_block_for_answer: bool = field(
        default=False, metadata={"help": "keep the last block visible to the answer"}
    )
    max_block_tokens: int = field(default=0, metadata={"help": "force <|block_end|> at this many tokens (0 = no cap)"})
    debug: bool = field(default=False, metadata={"help": "log every eviction"})

    def __post_init__(self) -> None:
        for name in (
            "enable",
            "compact_on_summary_end",
            "require_assistant_section",
            "restart_mode",
            "keep_last_block_for_answer",
            "debug",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("keep_last_n_blocks", "max_block_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.mask_delimiters is not None and not isinstance(self.mask_delimiters, bool):
            raise ValueError(f"mask_delimiters must be true or false, got {self.mask_delimiters!r}")
        if self.enable and self.mask_delimiters is None:
            raise ValueError(
                "mask_delimiters is required when memento attention is enabled: "
                "false for Qwen3 / Olmo 3 models, true for Phi-4 (it must match how the model was trained)"
            )
        if self.keep_last_n_blocks < -1:
            raise ValueError(f"keep_last_n_blocks must be >= -1 (-1 = never evict), got {self.keep_last_n_blocks}")
        if self.max_block_tokens < 0:
            raise ValueError(f"max_block_tokens must be >= 0 (0 = no cap), got {self.max_block_tokens}")
        if self.restart_mode and self.keep_last_n_blocks != 0:
            raise ValueError("restart_mode recomputes each memento without its block: it needs keep_last_n_blocks=0")
        if self.restart_mode and self.keep_last_block_for_answer:
            raise ValueError("restart_mode and keep_last_block_for_answer cannot be combined")

    @property
    def evicts(self) -> bool:
        """True when completed blocks are ever hidden from later tokens."""
        return self.enable and self.keep_last_n_blocks >= 0

    @property
    def hides_delimiters(self) -> bool:
        """True when the block delimiters belong to the hidden span (mask_delimiters or restart_mode)."""
        return bool(self.mask_delimiters) or self.restart_mode

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> MementoConfig:
        """Build from a dict in the authors' spelling; unknown keys are an error that lists the valid ones."""
        if not isinstance(options, dict):
            raise ValueError(f"memento config must be a JSON object, got {type(options).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown memento config option(s) {unknown}; valid options: {sorted(known)}")
        return cls(**options)

    @classmethod
    def from_json(cls, text: str) -> MementoConfig:
        """Build from a JSON string, as the ``--block-masking-config`` flag takes it."""
        try:
            options = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"memento config is not valid JSON (column {error.colno}): {error.msg}") from None
        return cls.from_dict(options)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in the authors' spelling (round-trips through `from_dict`)."""
        return asdict(self)

    def replace(self, **changes: Any) -> MementoConfig:
        """A copy with some options changed (validated again)."""
        return MementoConfig.from_dict({**self.to_dict(), **changes})

    @classmethod
    def disabled(cls) -> MementoConfig:
        """Plain causal attention."""
        return cls(enable=False)

"""`MementoConfig`: the options of memento attention, field for field the authors' vLLM `BlockMaskingConfig`.

The same JSON means the same thing here and in the authors' engine: `from_dict` / `from_json`
take every field of theirs, and a JSON config is off unless it says ``"enable": true`` (as
theirs). The Python constructor keeps ``enable=True`` as its convenient default. docs/config_parity.md
lists every field, ours against theirs.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from memento.markers import ASSISTANT_ROLE, BLOCK_END, BLOCK_START, IM_START, SUMMARY_END, SUMMARY_START

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

CONFIG_NAME = "block_masking_config"
"""How errors name the config (the authors' name for it)."""

TOKEN_FIELDS = (
    "block_start_token",
    "block_end_token",
    "summary_start_token",
    "summary_end_token",
    "im_start_token",
    "assistant_token",
)
"""Fields naming a token: its string, or an integer id written as a string (as the authors')."""

_BOOL_FIELDS = (
    "enable",
    "compact_on_summary_end",
    "require_assistant_section",
    "restart_mode",
    "keep_last_block_for_answer",
    "debug",
)


def default_mask_delimiters(model_type: str) -> bool:
    """The paper's `mask_delimiters` for a Hugging Face `model_type`; False when the family is unknown."""
    return MASK_DELIMITERS_BY_MODEL_TYPE.get(model_type, False)


class MementoConfigError(ValueError):
    """A bad config: `field` names the option ('' for the whole config), `reason` what was expected.

    The message reads ``block_masking_config.<field>: <reason>``, fit for an HTTP 400 or one CLI line.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{CONFIG_NAME}.{field}: {reason}" if field else f"{CONFIG_NAME}: {reason}")


class MementoConfigWarning(UserWarning):
    """A config that is valid but probably not what was meant (e.g. options set, masking off)."""


@dataclass(frozen=True)
class MementoConfig:
    """Which tokens a memento model may attend to, and when evicted blocks leave the cache.

    Attributes:
        enable: apply memento attention at all; False is plain causal attention. Defaults to True
            here, to False in `from_dict` / `from_json` (the authors' JSON meaning).
        keep_last_n_blocks: 0 evicts every block right after its memento; N > 0 keeps the N most
            recently completed blocks visible; -1 never evicts.
        mask_delimiters: also hide ``<|block_start|>``/``<|block_end|>`` (Phi-4) or keep them
            visible (Qwen3, Olmo 3). Required when enabled: the choice must match training.
        compact_on_summary_end: evict a block when a ``<|summary_end|>`` makes it due. False
            evicts nothing (attention is plain causal), as in the authors' engine, whose only
            compaction trigger this is.
        require_assistant_section: memento tokens outside assistant turns (in the prompt) are
            ordinary text.
        restart_mode: the paper's dual-stream ablation: evict the block with its delimiters, then
            recompute the memento's KV without the block visible. Needs keep_last_n_blocks = 0.
        keep_last_block_for_answer: defer evicting the most recent block until the next block
            starts, so that an answer after ``</think>`` still sees the last block.
        max_block_tokens: 0 = no cap; otherwise ``<|block_end|>`` is forced when a block's
            reasoning reaches this many tokens.
        debug: log every eviction.
        block_start_token, block_end_token, summary_start_token, summary_end_token: the memento
            markers (a token string, or an integer id as a string); `memento.format.SpecialIds.
            from_tokenizer(tokenizer, config)` resolves them.
        im_start_token, assistant_token: what opens an assistant turn (``<|im_start|>`` then
            ``assistant``), for `require_assistant_section`.
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
    compact_on_summary_end: bool = field(
        default=True,
        metadata={"help": "evict each block after its memento (false: nothing is evicted, as in the authors' engine)"},
    )
    require_assistant_section: bool = field(
        default=True, metadata={"help": "memento tokens in the prompt (before the assistant turn) are plain text"}
    )
    restart_mode: bool = field(default=False, metadata={"help": "recompute each memento without its block"})
    keep_last_block_for_answer: bool = field(
        default=False, metadata={"help": "keep the last block visible to the answer"}
    )
    max_block_tokens: int = field(default=0, metadata={"help": "force <|block_end|> at this many tokens (0 = no cap)"})
    debug: bool = field(default=False, metadata={"help": "log every eviction"})
    block_start_token: str = BLOCK_START
    block_end_token: str = BLOCK_END
    summary_start_token: str = SUMMARY_START
    summary_end_token: str = SUMMARY_END
    im_start_token: str = IM_START
    assistant_token: str = ASSISTANT_ROLE

    def __post_init__(self) -> None:
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise MementoConfigError(name, f"expected true or false, got {getattr(self, name)!r}")
        _check_integer("keep_last_n_blocks", self.keep_last_n_blocks, -1, "-1 = never evict")
        _check_integer("max_block_tokens", self.max_block_tokens, 0, "0 = no cap")
        if self.mask_delimiters is not None and not isinstance(self.mask_delimiters, bool):
            raise MementoConfigError("mask_delimiters", f"expected true or false, got {self.mask_delimiters!r}")
        for name in TOKEN_FIELDS:
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                object.__setattr__(self, name, str(value))  # an id, as the authors' int(token) accepts
            elif not isinstance(value, str) or not value:
                raise MementoConfigError(name, f"expected a token string or a token id, got {value!r}")
        if self.enable and self.mask_delimiters is None:
            raise MementoConfigError(
                "mask_delimiters",
                "required when memento attention is enabled: false for Qwen3 / Olmo 3 models, true for Phi-4 "
                "(it must match how the model was trained)",
            )
        if self.restart_mode and self.keep_last_n_blocks != 0:
            raise MementoConfigError(
                "restart_mode", "recomputes each memento without its block: it needs keep_last_n_blocks=0"
            )
        if self.restart_mode and self.keep_last_block_for_answer:
            raise MementoConfigError("restart_mode", "cannot be combined with keep_last_block_for_answer")

    @property
    def evicts(self) -> bool:
        """True when completed blocks are ever hidden from later tokens.

        ``compact_on_summary_end=False`` evicts nothing, as in the authors' engine (whose only
        trigger for compaction is the ``<|summary_end|>``): attention is plain causal.
        """
        return self.enable and self.keep_last_n_blocks >= 0 and self.compact_on_summary_end

    @property
    def hides_delimiters(self) -> bool:
        """True when the block delimiters belong to the hidden span (mask_delimiters or restart_mode)."""
        return bool(self.mask_delimiters) or self.restart_mode

    @classmethod
    def from_dict(cls, options: Any) -> MementoConfig:
        """Build from the authors' JSON object: off unless ``"enable": true``, as theirs.

        Raises `MementoConfigError` (a ValueError) naming the field and the reason: an unknown
        key, a wrong type, a value out of range. Warns (`MementoConfigWarning`) when options are
        set but ``enable`` is not.
        """
        if not isinstance(options, dict):
            raise MementoConfigError("", f"expected a JSON object, got {type(options).__name__}")
        known = [f.name for f in fields(cls)]
        for key in options:
            if key not in known:
                raise MementoConfigError(str(key), f"unknown memento config option; valid options: {sorted(known)}")
        if "enable" not in options and options:
            warnings.warn(
                f'{CONFIG_NAME} sets {sorted(options)} but not "enable": true, so memento attention is off '
                '(as in the authors\' BlockMaskingConfig); add "enable": true to turn it on',
                MementoConfigWarning,
                stacklevel=2,
            )
        return cls(**{"enable": False, **options})

    @classmethod
    def from_json(cls, text: str) -> MementoConfig:
        """Build from a JSON string, as the ``--block-masking-config`` flag takes it (see `from_dict`)."""
        try:
            options = json.loads(text)
        except json.JSONDecodeError as error:
            raise MementoConfigError(
                "", f"not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}"
            ) from None
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


def _check_integer(name: str, value: Any, minimum: int, meaning: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise MementoConfigError(name, f"expected an integer >= {minimum} ({meaning}), got {value!r}")

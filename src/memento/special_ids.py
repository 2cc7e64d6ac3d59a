"""`SpecialIds`: the token ids of the memento and ChatML markers in one vocabulary.

Resolved from a tokenizer and, optionally, a `MementoConfig` naming the markers (its six
``*_token`` fields, the authors' spelling): a token string, or an integer id written as a string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from memento.markers import (
    ASSISTANT_ROLE,
    BLOCK_END,
    BLOCK_START,
    IM_END,
    IM_START,
    SUMMARY_END,
    SUMMARY_START,
    THINK_END,
    THINK_START,
)

if TYPE_CHECKING:
    from memento.config import MementoConfig


class _Tokenizer(Protocol):
    def convert_tokens_to_ids(self, tokens: str) -> int | None: ...

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...


@dataclass(frozen=True)
class SpecialIds:
    """Token ids of the memento markers in one vocabulary.

    The four memento ids are required; ``<think>``, ``</think>``, ChatML markers and the
    assistant header (the ids of ``<|im_start|>assistant``) are optional. Without an assistant
    header, `require_assistant_section` cannot locate the prompt and the whole sequence counts
    as the assistant turn.
    """

    block_start: int
    block_end: int
    summary_start: int
    summary_end: int
    think_start: int | None = None
    think_end: int | None = None
    im_start: int | None = None
    im_end: int | None = None
    assistant_header: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        memento = (self.block_start, self.block_end, self.summary_start, self.summary_end)
        if len(set(memento)) != 4:
            raise ValueError(f"the four memento token ids must be distinct, got {memento}")
        if self.assistant_header is not None:
            object.__setattr__(self, "assistant_header", tuple(int(i) for i in self.assistant_header))
            if not self.assistant_header:
                raise ValueError("assistant_header must be a non-empty sequence of ids or None")

    @property
    def memento_ids(self) -> tuple[int, int, int, int]:
        """(block_start, block_end, summary_start, summary_end)."""
        return (self.block_start, self.block_end, self.summary_start, self.summary_end)

    @classmethod
    def from_tokenizer(cls, tokenizer: _Tokenizer, config: MementoConfig | None = None) -> SpecialIds:
        """Look the markers up in a Hugging Face tokenizer; raise if a memento token is missing.

        With a `config`, its ``*_token`` fields name the markers (defaults: the standard ones).
        A marker is found as the authors' engine finds it: an integer string is the id itself;
        otherwise a text that encodes to one token, or a token of the vocabulary.
        """
        names = {
            "block_start": config.block_start_token if config else BLOCK_START,
            "block_end": config.block_end_token if config else BLOCK_END,
            "summary_start": config.summary_start_token if config else SUMMARY_START,
            "summary_end": config.summary_end_token if config else SUMMARY_END,
        }
        ids = {role: resolve_token(tokenizer, token) for role, token in names.items()}
        missing = [f"{role}_token={names[role]!r}" for role, value in ids.items() if value is None]
        if missing:
            raise ValueError(
                f"tokenizer lacks the memento tokens {missing}; add them with memento.training.add_memento_tokens"
            )
        im_start_token = config.im_start_token if config else IM_START
        assistant_token = config.assistant_token if config else ASSISTANT_ROLE
        im_start = resolve_token(tokenizer, im_start_token)
        return cls(
            **ids,  # type: ignore[arg-type]
            think_start=resolve_token(tokenizer, THINK_START),
            think_end=resolve_token(tokenizer, THINK_END),
            im_start=im_start,
            im_end=resolve_token(tokenizer, IM_END),
            assistant_header=_assistant_header(tokenizer, im_start, im_start_token, assistant_token),
        )


def resolve_token(tokenizer: _Tokenizer, token: str) -> int | None:
    """The id of `token`: an integer string is the id; else its encoding if one token; else a vocabulary entry."""
    if token.strip().isdigit():
        return int(token)
    encoded = list(tokenizer.encode(token, add_special_tokens=False))
    if len(encoded) == 1:
        return int(encoded[0])
    token_id = tokenizer.convert_tokens_to_ids(token)
    unk = getattr(tokenizer, "unk_token_id", None)
    if token_id is None or (unk is not None and token_id == unk and token != getattr(tokenizer, "unk_token", None)):
        return None
    return int(token_id)


def _assistant_header(
    tokenizer: _Tokenizer, im_start: int | None, im_start_token: str, assistant_token: str
) -> tuple[int, ...] | None:
    """Ids of ``<|im_start|>assistant``; None when either part is not in the vocabulary."""
    if im_start is None:
        return None
    if assistant_token.strip().isdigit():
        return (im_start, int(assistant_token))
    text = assistant_token if im_start_token.strip().isdigit() else im_start_token + assistant_token
    encoded = [int(i) for i in tokenizer.encode(text, add_special_tokens=False)]
    if im_start_token.strip().isdigit():
        encoded = [im_start, *encoded]
    if len(encoded) < 2 or encoded[0] != im_start:
        return None
    return tuple(encoded)

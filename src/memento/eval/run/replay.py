"""The paper's offline KV replay of finished responses: peak KV and KV AUC per response.

A response is replayed through the attention rule (`memento.kv.simulate`, the owner of the
measurement) as the prompt's tokens (the chat template applied to the user turn) followed by the
response's tokens, a final end-of-turn token left out (it is sampled but never enters the cache).
Tokens come from the backend when it returns them, else from the tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memento.config import MementoConfig
from memento.counting import is_approximate, load_tokenizer
from memento.eval.benchmarks.prompts import chat_messages
from memento.format import IM_END, MEMENTO_TOKENS, SpecialIds
from memento.kv import KVGeometry, KVReport, simulate

INERT_SPECIAL_IDS = SpecialIds(-1, -2, -3, -4)
"""For a tokenizer without memento tokens (a base model): ids no token has, so nothing is a block."""
PIECE_CHARS = 1 << 16
"""A long response is encoded in pieces of at least this many characters (`KVReplay.response_ids`)."""


@dataclass(frozen=True)
class KVFigures:
    """One response replayed: tokens, cache peak (tokens, bytes), AUC (GB x thousand tokens), blocks."""

    prompt_tokens: int
    response_tokens: int
    peak_tokens: int
    peak_bytes: int
    auc_gb_ktok: float
    blocks: int


@dataclass
class KVReplay:
    """A tokenizer (for prompts and responses without token ids) and the geometry the bytes use."""

    tokenizer: Any
    geometry: KVGeometry

    def __post_init__(self) -> None:
        try:
            self.special_ids = SpecialIds.from_tokenizer(self.tokenizer)
        except ValueError:
            self.special_ids = INERT_SPECIAL_IDS
        stops = {getattr(self.tokenizer, "eos_token_id", None), self.special_ids.im_end}
        convert = getattr(self.tokenizer, "convert_tokens_to_ids", None)
        if convert is not None:
            stops.add(convert(IM_END))
        unknown = getattr(self.tokenizer, "unk_token_id", None)
        self.stop_ids = frozenset(int(i) for i in stops if isinstance(i, int) and i != unknown)
        self._cut = _cut_markers(self.tokenizer, self.special_ids)

    @property
    def approximate(self) -> bool:
        """True when token counts come from the ~4-characters-a-token stand-in."""
        return is_approximate(self.tokenizer)

    @classmethod
    def load(cls, tokenizer: str | Path | None, geometry: KVGeometry) -> KVReplay:
        """With a local Hugging Face tokenizer, or the approximate counter when `tokenizer` is None."""
        return cls(load_tokenizer(tokenizer), geometry)

    def prompt_ids(self, prompt: str) -> list[int]:
        """The chat-templated prompt, as the backends send it."""
        return chat_prompt_ids(self.tokenizer, prompt)

    def response_ids(self, text: str) -> list[int]:
        """The response's tokens from its text (special tokens as written).

        A long text is encoded in pieces of at least `PIECE_CHARS` characters, each cut just before a memento
        marker that the tokenizer holds as an added token taking no text beside it (a Hugging Face tokenizer
        splits its input at such tokens before anything else): the same ids, and the tokenizer's working
        memory (offsets, alignments: hundreds of bytes a token) bounded by a piece instead of the whole text.
        """
        ids: list[int] = []
        for piece in self._pieces(text):
            ids.extend(self.tokenizer.encode(piece, add_special_tokens=False))
        return ids

    def _pieces(self, text: str) -> Iterator[str]:
        if self._cut is None or len(text) <= PIECE_CHARS:
            yield text
            return
        start = 0
        for match in self._cut.finditer(text, PIECE_CHARS):
            if match.start() - start >= PIECE_CHARS:
                yield text[start : match.start()]
                start = match.start()
        yield text[start:]

    def measure(self, prompt_ids: Sequence[int], response_ids: Sequence[int], config: MementoConfig) -> KVFigures:
        """Replay prompt + response (a final stop token dropped) under `config`."""
        report = self.replay(prompt_ids, response_ids, config)
        return KVFigures(
            prompt_tokens=len(prompt_ids),
            response_tokens=report.generated_tokens,
            peak_tokens=report.peak_tokens,
            peak_bytes=report.peak_bytes,
            auc_gb_ktok=report.auc_gb_ktok,
            blocks=len(report.blocks),
        )

    def replay(self, prompt_ids: Sequence[int], response_ids: Sequence[int], config: MementoConfig) -> KVReport:
        """The step-by-step replay (`KVReport.occupancy`: cache tokens after each step) behind `measure`."""
        response = list(response_ids)
        if response and response[-1] in self.stop_ids:
            response = response[:-1]
        ids = [*prompt_ids, *response]
        return simulate(ids, self.special_ids, self.geometry, config, prompt_length=len(prompt_ids))


def _cut_markers(tokenizer: Any, special_ids: SpecialIds) -> re.Pattern[str] | None:
    """The memento markers a text may be cut before without changing its tokens: added tokens of `tokenizer`
    matched on the raw text that take no whitespace or word boundary from beside them; None when there are none
    (or the tokenizer is not a Hugging Face one)."""
    added = getattr(tokenizer, "added_tokens_decoder", None)
    if not isinstance(added, dict):
        return None
    safe = []
    for marker, token_id in zip(MEMENTO_TOKENS, special_ids.memento_ids, strict=True):
        token = added.get(token_id)
        flags = ("lstrip", "rstrip", "single_word", "normalized")
        if (
            token is not None
            and getattr(token, "content", None) == marker
            and not any(getattr(token, f) for f in flags)
        ):
            safe.append(marker)
    return re.compile("|".join(map(re.escape, safe))) if safe else None


def chat_prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """The user turn `prompt` through the tokenizer's chat template, with the assistant header
    (plain ChatML when the tokenizer has no template)."""
    messages = chat_messages(prompt)
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return [int(t) for t in ids]
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return list(tokenizer.encode(text + "<|im_start|>assistant\n", add_special_tokens=False))


def resolve_geometry(
    *, model_config: str | Path | None = None, preset: str | None = None, model: str | Path | None = None
) -> KVGeometry:
    """`preset`, else the config of `model_config`, else of `model` when it is a local checkpoint.

    Raises ValueError when none gives a geometry (a served model name without --model-config).
    """
    if preset is not None:
        return KVGeometry.preset(preset)
    source = model_config if model_config is not None else model
    if source is None or not _has_config(Path(source)):
        raise ValueError(
            f"no KV geometry: {source} is not a local checkpoint; pass --model-config DIR or --geometry PRESET"
        )
    return KVGeometry.from_config(source)


def _has_config(path: Path) -> bool:
    return (path.is_file() and path.name.endswith(".json")) or (path / "config.json").is_file()

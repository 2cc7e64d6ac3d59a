"""Per-request memento state kept by the vLLM scheduler and by the worker: which spans are evicted, where.

Both sides follow a request's tokens with `memento.attention.BlockTracker` (the one rule), fed
incrementally as tokens arrive, and lay its live KV out with a `PhysicalLayout`: the scheduler
gives the emptied KV blocks back to vLLM's pool, the worker moves K/V and writes new tokens.
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from memento.attention import BlockTracker, EvictedSpan
from memento.config import TOKEN_FIELDS, MementoConfig, MementoConfigError
from memento.format import SpecialIds
from memento.vllm.layout import PhysicalLayout

logger = logging.getLogger(__name__)

CONFIG_ENV = "MEMENTO_BLOCK_MASKING_CONFIG"
"""Engine-wide block masking config (JSON, the authors' `--block-masking-config` spelling)."""

REQUEST_KEY = "block_masking_config"
"""Key in `SamplingParams.extra_args` (``vllm_xargs`` over HTTP) overriding it for one request."""


def engine_config() -> MementoConfig | None:
    """The engine-wide config from the environment, or None when the plugin is off."""
    text = os.environ.get(CONFIG_ENV)
    return _parse(text) if text else None


@functools.lru_cache(maxsize=16)
def _parse(text: str) -> MementoConfig:
    return MementoConfig.from_json(text)


def requested_config(extra_args: dict[str, Any] | None, default: MementoConfig | None) -> MementoConfig | None:
    """A request's config as given: its ``extra_args["block_masking_config"]`` (dict or JSON) or the default.

    Raises ValueError naming the option and the reason when the override is not a valid config, or
    names other memento markers than the engine's (`special_ids_for` resolves them once per engine).
    """
    override = (extra_args or {}).get(REQUEST_KEY)
    if override is None:
        return default
    if isinstance(override, str):
        config = _parse(override)
    elif isinstance(override, dict):
        config = MementoConfig.from_dict(override)
    else:
        raise ValueError(f"must be a JSON object (sent as a string), got {type(override).__name__} {override!r}")
    _check_same_markers(config, default)
    return config


def _check_same_markers(config: MementoConfig, engine: MementoConfig | None) -> None:
    reference = engine or MementoConfig(enable=False)
    for name in TOKEN_FIELDS:
        if getattr(config, name) != getattr(reference, name):
            raise MementoConfigError(
                name,
                f"the engine's markers are fixed at start ({name}={getattr(reference, name)!r}); a request "
                f"cannot change them (got {getattr(config, name)!r}): set them in the engine's config",
            )


def request_config(extra_args: dict[str, Any] | None, default: MementoConfig | None) -> MementoConfig | None:
    """The config a request is masked with, or None when it evicts nothing.

    Raises ValueError (one line naming the option) for an invalid config: vLLM's admission hook
    (`memento.vllm.validation`) turns it into HTTP 400.
    """
    config = requested_config(extra_args, default)
    if config is None or not config.evicts:
        return None
    return config


@functools.lru_cache(maxsize=4)
def special_ids_for(tokenizer: str, trust_remote_code: bool = False, config: MementoConfig | None = None) -> SpecialIds:
    """The memento and ChatML token ids of a vLLM model's tokenizer (loaded once per process), found by the
    marker names of `config` (the engine's; None: the standard markers), as `SpecialIds.from_tokenizer`."""
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(tokenizer, trust_remote_code=trust_remote_code)
    return SpecialIds.from_tokenizer(loaded, config)


@dataclass
class RequestState:
    """One request followed token by token: evicted spans with the position that closed them.

    A span closed at position c is seen by queries up to c and hidden from c + 1 on. In
    restart_mode each closing also asks for its memento to be recomputed without the block:
    the scheduler rewinds the request to the memento's ``<|summary_start|>`` (`due_restart`).
    """

    tracker: BlockTracker
    layout: PhysicalLayout
    fed: int = 0
    closed_spans: list[tuple[int, EvictedSpan]] = field(default_factory=list)  # (closing position, span)
    restarts: list[tuple[int, range]] = field(default_factory=list)  # (closing position, memento to recompute)
    restarted: int = 0  # restarts done since the request (re)started from its first token

    def advance(self, token_ids: Sequence[int], upto: int) -> None:
        """Feed tokens ``fed..upto-1`` (positions are logical, prompt included)."""
        if upto <= self.fed:
            return
        feed = self.tracker.feed
        for position in range(self.fed, upto):
            step = feed(int(token_ids[position]))
            if step.evicted:
                self.closed_spans.extend((position, span) for span in step.evicted)
            if step.recompute:
                self.restarts.append((position, step.recompute))
        self.fed = upto

    def first_closing(self, start: int, stop: int) -> int | None:
        """The first position in [start, stop) that closes a span not yet removed (fed tokens only), or None.

        A span already removed closes nothing again when restart_mode recomputes its memento.
        """
        index = bisect.bisect_left(self.closed_spans, start, key=lambda closed: closed[0])
        index = max(index, self.layout.spans_applied)
        if index < len(self.closed_spans) and self.closed_spans[index][0] < stop:
            return self.closed_spans[index][0]
        return None

    def due_restart(self, computed: int) -> range | None:
        """restart_mode: the memento to recompute now that its closing token (before `computed`) has run."""
        if self.restarted < len(self.restarts) and self.restarts[self.restarted][0] < computed:
            return self.restarts[self.restarted][1]
        return None

    def rewind(self, memento: range) -> None:
        """Recompute `memento` next: the layout forgets its tokens (its block stays evicted)."""
        self.restarted += 1
        self.layout.begin_step(memento.start, self.closed_spans)

    def restart_from_scratch(self) -> None:
        """The request lost its KV (preempted) and is recomputed from its first token."""
        self.layout.reset()
        self.restarted = 0


class RequestStates:
    """Requests by id, each followed from its first step (None: the request is not masked)."""

    def __init__(self, special_ids: SpecialIds, default: MementoConfig | None, block_size: int) -> None:
        self.special_ids = special_ids
        self.default = default
        self.block_size = block_size
        self.states: dict[str, RequestState | None] = {}

    def get(self, request_id: str, params: Any) -> RequestState | None:
        """The state of `request_id`, created from its sampling params' ``extra_args`` on first sight."""
        if request_id not in self.states:
            config = request_config(getattr(params, "extra_args", None), self.default)
            self.states[request_id] = (
                None
                if config is None
                else RequestState(BlockTracker(self.special_ids, config), PhysicalLayout(self.block_size))
            )
        return self.states[request_id]

    def drop(self, request_ids: Iterable[str]) -> None:
        for request_id in list(request_ids):
            self.states.pop(request_id, None)


def describe(config: MementoConfig) -> str:
    """The config as the authors' JSON."""
    return json.dumps(config.to_dict(), sort_keys=True)

"""KV-cache geometry and the KV simulator.

`KVGeometry` says how many bytes one cached token costs in a model (per layer, with sliding-window
layers capped at their window). `simulate` replays a token sequence step by step through the
one attention rule (`memento.attention.BlockTracker`) and reports occupancy, peak and area under
the curve, with and without eviction (vanilla is the same call with ``keep_last_n_blocks=-1``).
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from memento.attention import BlockTracker, find_assistant_start
from memento.config import MementoConfig
from memento.format import SpecialIds

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "float8_e4m3fn": 1, "float8_e5m2": 1}


@dataclass(frozen=True)
class KVGeometry:
    """Shape of a model's KV cache.

    Attributes:
        num_layers: decoder layers.
        num_kv_heads: key/value heads per layer (GQA groups).
        head_dim: dimension of one head.
        bytes_per_element: 2 for bf16/fp16 (the paper's figures), 4 for fp32.
        sliding_windows: per layer, the attention window in tokens, or None for full attention;
            None altogether means every layer is full.
        name: label for reports.
    """

    num_layers: int
    num_kv_heads: int
    head_dim: int
    bytes_per_element: int = 2
    sliding_windows: tuple[int | None, ...] | None = None
    name: str = "custom"

    def __post_init__(self) -> None:
        for attribute in ("num_layers", "num_kv_heads", "head_dim", "bytes_per_element"):
            value = getattr(self, attribute)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"KVGeometry.{attribute} must be a positive integer, got {value!r}")
        if self.sliding_windows is not None:
            windows = tuple(self.sliding_windows)
            if len(windows) != self.num_layers:
                raise ValueError(f"sliding_windows has {len(windows)} entries for {self.num_layers} layers")
            if any(w is not None and w <= 0 for w in windows):
                raise ValueError("sliding windows must be positive or None")
            object.__setattr__(self, "sliding_windows", None if all(w is None for w in windows) else windows)

    @property
    def bytes_per_token_per_layer(self) -> int:
        """K and V of one token in one layer."""
        return 2 * self.num_kv_heads * self.head_dim * self.bytes_per_element

    @property
    def bytes_per_token(self) -> int:
        """K and V of one token across all layers (sliding-window caps ignored)."""
        return self.num_layers * self.bytes_per_token_per_layer

    def layer_tokens(self, live_positions: Sequence[int], current_position: int) -> list[int]:
        """Per layer, the live logical positions (sorted ascending) the token at `current_position`
        attends to: all of them, or in a sliding-window layer those within its window
        (key > current - window, as transformers' sliding masks)."""
        count = len(live_positions)
        windows = self.sliding_windows or (None,) * self.num_layers
        return [
            count if window is None else count - bisect.bisect_right(live_positions, current_position - window)
            for window in windows
        ]

    def cache_bytes(self, live_positions: Sequence[int], current_position: int) -> int:
        """Bytes held for the given live logical positions (sorted ascending) at a step.

        A sliding-window layer holds only positions within its window of `current_position`.
        """
        if self.sliding_windows is None:
            return len(live_positions) * self.bytes_per_token
        return sum(self.layer_tokens(live_positions, current_position)) * self.bytes_per_token_per_layer

    @classmethod
    def preset(cls, name: str) -> KVGeometry:
        """A geometry from the paper's models: qwen3-8b, qwen3-32b, phi-4-reasoning, olmo-3-7b-think (bf16)."""
        key = name.lower()
        if key not in _PRESETS:
            raise ValueError(f"unknown geometry preset {name!r}; choose from {sorted(_PRESETS)}")
        return _PRESETS[key]

    @classmethod
    def from_config(cls, config: Any, *, bytes_per_element: int | None = None) -> KVGeometry:
        """From a Hugging Face config object, or a local checkpoint directory / config.json path (offline).

        Bytes per element come from the config's dtype (bf16 when unset) unless given.
        """
        name = "custom"
        if isinstance(config, (str, Path)):
            from transformers import AutoConfig

            path = Path(config)
            directory = path.parent if path.is_file() else path
            if not (directory / "config.json").is_file():
                raise FileNotFoundError(f"no config.json in {directory}")
            name = directory.name
            config = AutoConfig.from_pretrained(directory, local_files_only=True)
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        layers = text_config.num_hidden_layers
        heads = text_config.num_attention_heads
        kv_heads = getattr(text_config, "num_key_value_heads", None) or heads
        head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // heads
        windows = layer_windows(text_config)
        if bytes_per_element is None:
            dtype = getattr(text_config, "dtype", None) or getattr(text_config, "torch_dtype", None)
            dtype_name = str(dtype).removeprefix("torch.") if dtype is not None else "bfloat16"
            bytes_per_element = _DTYPE_BYTES.get(dtype_name, 2)
        return cls(layers, kv_heads, head_dim, bytes_per_element, windows, name=getattr(config, "model_type", name))


def layer_windows(config: Any) -> tuple[int | None, ...] | None:
    """Per decoder layer, the attention window in tokens as transformers applies it (None: the
    layer attends every key); None altogether when no layer has a window. The one parser of
    sliding windows: the KV simulator and generation's masks both read it.

    transformers 5.x: a window is `sliding_window`, unless `use_sliding_window` is False (Qwen2/3
    null it then). Models that list `layer_types` (Qwen2/3 from `max_window_layers` on, Olmo 3,
    Gemma 2/3, ...) window their "sliding_attention" layers only; models without them (Mistral,
    Mixtral, Phi-3) window every layer.
    """
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    window = getattr(text_config, "sliding_window", None)
    if not window or getattr(text_config, "use_sliding_window", True) is False:
        return None
    layers = text_config.num_hidden_layers
    layer_types = getattr(text_config, "layer_types", None)
    if not layer_types:
        return (window,) * layers
    if len(layer_types) != layers:
        raise ValueError(f"layer_types has {len(layer_types)} entries for {layers} layers")
    windows = tuple(window if kind == "sliding_attention" else None for kind in layer_types)
    return windows if any(w is not None for w in windows) else None


_PRESETS: dict[str, KVGeometry] = {
    "qwen3-8b": KVGeometry(36, 8, 128, name="qwen3-8b"),
    "qwen3-32b": KVGeometry(64, 8, 128, name="qwen3-32b"),
    "phi-4-reasoning": KVGeometry(40, 10, 128, name="phi-4-reasoning"),
    # Olmo 3 7B: three sliding-window layers (4,096 tokens) for every full-attention layer.
    "olmo-3-7b-think": KVGeometry(32, 32, 128, sliding_windows=(4096, 4096, 4096, None) * 8, name="olmo-3-7b-think"),
}


PRESET_MODEL_TYPES: dict[str, str] = {
    "qwen3-8b": "qwen3",
    "qwen3-32b": "qwen3",
    "phi-4-reasoning": "phi3",  # Phi-4 checkpoints are Phi3ForCausalLM
    "olmo-3-7b-think": "olmo3",
}
"""The Hugging Face `model_type` of each preset's model (per-family defaults such as mask_delimiters)."""


def memento_to_block_ratio(memento_size: float, block_size: float) -> float | None:
    """The project's one measure of compression: memento size / block size (tokens or characters).

    Lower is stronger. It is the paper's "compression ratio" (median 0.16 math, 0.18 code, 0.23
    science in characters); the paper's "~6x trace-level compression" is 1 / this ratio (~0.17)
    in tokens. Every table and JSON field that reports compression reports this, named so.
    None for an empty block.
    """
    return memento_size / block_size if block_size else None


@dataclass(frozen=True)
class BlockCompression:
    """One completed block: its reasoning vs its memento (delimiters excluded)."""

    block_index: int
    block_tokens: int
    memento_tokens: int
    block_chars: int | None = None
    memento_chars: int | None = None

    @property
    def memento_to_block_tokens(self) -> float | None:
        return memento_to_block_ratio(self.memento_tokens, self.block_tokens)

    @property
    def memento_to_block_chars(self) -> float | None:
        if self.block_chars is None or self.memento_chars is None:
            return None
        return memento_to_block_ratio(self.memento_chars, self.block_chars)


@dataclass
class KVReport:
    """What `simulate` measured on one sequence.

    Steps are tokens: step t writes the KV of logical position t. `occupancy[t]` and
    `occupancy_bytes[t]` are the cache after step t and its evictions; the peak is taken before
    evictions (at a ``<|summary_end|>`` step the block is still cached). AUC integrates bytes over
    the generated steps (t >= prompt_tokens), in GB x thousand tokens (1e12 byte-tokens).
    """

    geometry: str
    prompt_tokens: int
    total_tokens: int
    peak_tokens: int
    peak_bytes: int
    auc_gb_ktok: float
    num_evictions: int
    evicted_tokens: int
    occupancy: list[int]
    occupancy_bytes: list[int]
    blocks: list[BlockCompression] = field(default_factory=list)

    @property
    def generated_tokens(self) -> int:
        return self.total_tokens - self.prompt_tokens

    @property
    def final_tokens(self) -> int:
        return self.occupancy[-1] if self.occupancy else 0

    @property
    def memento_to_block_tokens(self) -> float | None:
        """Over all completed blocks: memento tokens / block tokens (`memento_to_block_ratio`)."""
        return memento_to_block_ratio(
            sum(b.memento_tokens for b in self.blocks), sum(b.block_tokens for b in self.blocks)
        )

    @property
    def memento_to_block_chars_median(self) -> float | None:
        """Median over blocks of memento chars / block chars (the paper's per-block figure)."""
        ratios = [r for r in (b.memento_to_block_chars for b in self.blocks) if r is not None]
        return statistics.median(ratios) if ratios else None

    def to_dict(self, *, with_curves: bool = True) -> dict[str, Any]:
        """JSON-ready dict; `with_curves=False` drops the per-step lists."""
        data = asdict(self)
        data["blocks"] = [
            {
                **asdict(b),
                "memento_to_block_tokens": b.memento_to_block_tokens,
                "memento_to_block_chars": b.memento_to_block_chars,
            }
            for b in self.blocks
        ]
        data.update(
            generated_tokens=self.generated_tokens,
            final_tokens=self.final_tokens,
            memento_to_block_tokens=self.memento_to_block_tokens,
            memento_to_block_chars_median=self.memento_to_block_chars_median,
            num_blocks=len(self.blocks),
        )
        if not with_curves:
            del data["occupancy"], data["occupancy_bytes"]
        return data


def simulate(
    token_ids: Sequence[int] | torch.Tensor,
    special_ids: SpecialIds,
    geometry: KVGeometry,
    config: MementoConfig,
    *,
    prompt_length: int | None = None,
    assistant_start: int | None = None,
    decode: Callable[[list[int]], str] | None = None,
) -> KVReport:
    """Replay a sequence through the attention rule and measure the KV cache step by step.

    Args:
        token_ids: [L] the full sequence, prompt included.
        special_ids: ids of the memento markers.
        geometry: bytes per token per layer, sliding windows.
        config: memento options; ``keep_last_n_blocks=-1`` (or ``enable=False``) is vanilla.
        prompt_length: tokens that are prompt for the AUC (default: up to the assistant header).
        assistant_start: override of where the assistant turn begins for the attention rule.
        decode: ids -> text; when given, per-block compression also counts characters.
    """
    ids = token_ids.tolist() if isinstance(token_ids, torch.Tensor) else [int(t) for t in token_ids]
    if prompt_length is None:
        prompt_length = assistant_start if assistant_start is not None else find_assistant_start(ids, special_ids)
    if not 0 <= prompt_length <= len(ids):
        raise ValueError(f"prompt_length {prompt_length} outside 0..{len(ids)}")
    tracker = BlockTracker(special_ids, config, assistant_start=assistant_start)
    live: list[int] = []
    occupancy: list[int] = []
    occupancy_bytes: list[int] = []
    peak_tokens = peak_bytes = 0
    num_evictions = evicted_tokens = 0

    def step(position: int, token_id: int) -> None:
        nonlocal peak_tokens, peak_bytes, num_evictions, evicted_tokens
        evicted = tracker.feed(token_id).evicted
        live.append(position)
        peak_tokens = max(peak_tokens, len(live))
        peak_bytes = max(peak_bytes, geometry.cache_bytes(live, position))
        for span in evicted:
            lo = bisect.bisect_left(live, span.start)
            hi = bisect.bisect_left(live, span.stop)
            del live[lo:hi]
            evicted_tokens += hi - lo
            num_evictions += 1
        occupancy.append(len(live))
        occupancy_bytes.append(geometry.cache_bytes(live, position))

    # Between two markers every token only joins the cache: with full attention in every layer (bytes
    # proportional to tokens) such a run is taken whole, so the time goes with the markers, not the tokens.
    per_token = geometry.bytes_per_token if geometry.sliding_windows is None else None
    markers = tracker.markers
    stops = [index for index, token_id in enumerate(ids) if token_id in markers]
    start = 0
    for stop in [*stops, len(ids)]:
        if stop > start and per_token is not None and tracker.skip(ids[start:stop]):
            size = len(live)
            live.extend(range(start, stop))
            occupancy.extend(range(size + 1, len(live) + 1))
            occupancy_bytes.extend(range((size + 1) * per_token, len(live) * per_token + 1, per_token))
            peak_tokens, peak_bytes = max(peak_tokens, len(live)), max(peak_bytes, len(live) * per_token)
        else:
            for position in range(start, stop):
                step(position, ids[position])
        if stop < len(ids):
            step(stop, ids[stop])
        start = stop + 1
    auc = sum(occupancy_bytes[prompt_length:]) / 1e12
    return KVReport(
        geometry=geometry.name,
        prompt_tokens=prompt_length,
        total_tokens=len(ids),
        peak_tokens=peak_tokens,
        peak_bytes=peak_bytes,
        auc_gb_ktok=auc,
        num_evictions=num_evictions,
        evicted_tokens=evicted_tokens,
        occupancy=occupancy,
        occupancy_bytes=occupancy_bytes,
        blocks=_block_compression(tracker, ids, decode),
    )


def _block_compression(
    tracker: BlockTracker, ids: list[int], decode: Callable[[list[int]], str] | None
) -> list[BlockCompression]:
    result = []
    for block in tracker.blocks:
        if block.end is None or block.summary_start is None or block.summary_end is None:
            continue
        reasoning = ids[block.start + 1 : block.end]
        memento = ids[block.summary_start + 1 : block.summary_end]
        result.append(
            BlockCompression(
                block.index,
                len(reasoning),
                len(memento),
                len(decode(reasoning)) if decode else None,
                len(decode(memento)) if decode else None,
            )
        )
    return result

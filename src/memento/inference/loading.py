"""Load a Hugging Face checkpoint (local path) for memento inference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from memento.errors import UsageError
from memento.format import MEMENTO_TOKENS

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when available, else CPU; a device this machine lacks is a `UsageError`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        target = torch.device(device)
    except RuntimeError:
        raise UsageError(f"unknown device {device!r}; expected auto, cpu, cuda or cuda:N") from None
    if target.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"device {device!r}: CUDA is not available on this machine (torch {torch.__version__})")
        if target.index is not None and target.index >= count:
            raise UsageError(f"device {device!r}: this machine has {count} CUDA device(s), numbered from 0")
    return target


def load_model_and_tokenizer(
    path: str | Path, *, dtype: str = "auto", device: str = "auto", attn_implementation: str = "sdpa"
) -> tuple[Any, Any]:
    """Model in eval mode and its tokenizer from a local checkpoint; the tokenizer must know the memento tokens.

    dtype 'auto' keeps the checkpoint's dtype on GPU and uses float32 on CPU.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a Hugging Face checkpoint directory (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise UsageError(f"{path}: cannot load the tokenizer: {_first_line(error)}") from None
    missing = [t for t in MEMENTO_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        raise ValueError(
            f"the tokenizer in {path} lacks the memento tokens {missing}: this is not a memento model "
            "(train one with `memento train`)"
        )
    target = resolve_device(device)
    if dtype == "auto":
        torch_dtype: Any = "auto" if target.type == "cuda" else torch.float32
    elif dtype in _DTYPES:
        torch_dtype = _DTYPES[dtype]
    else:
        raise ValueError(f"unknown dtype {dtype!r}; choose auto, {', '.join(_DTYPES)}")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=torch_dtype, attn_implementation=attn_implementation
        )
    except (OSError, SafetensorError) as error:
        raise UsageError(f"{path}: cannot load the model weights: {_first_line(error)}") from None
    return model.to(target).eval(), tokenizer


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__

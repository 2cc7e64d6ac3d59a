"""Load a model the way users have it: a local Hugging Face checkpoint directory or a `.gguf` file.

`resolve_checkpoint` turns either into a checkpoint directory (a GGUF file is converted once
and cached, see `memento.inference.gguf`) after checking what can be checked cheaply, so
every mistake becomes one line naming the file: a missing path, a directory without
config.json, an unreadable config, no weights, a corrupt safetensors file, an unsupported file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from memento.errors import UsageError
from memento.format import MEMENTO_TOKENS
from memento.inference.gguf import gguf_checkpoint

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
_EXPECTED = "a Hugging Face checkpoint directory (with config.json) or a .gguf file"


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


def resolve_dtype(dtype: str, device: torch.device) -> Any:
    """A torch dtype from 'auto' / 'float32' / 'fp32' / 'bfloat16' / 'bf16' / 'float16' / 'fp16'.

    'auto' keeps the checkpoint's dtype on GPU ("auto" for transformers) and uses float32 on CPU.
    """
    if dtype == "auto":
        return "auto" if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}; choose auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def resolve_checkpoint(path: str | Path) -> Path:
    """A loadable checkpoint directory for `path`: the directory itself, or the cached conversion of a .gguf.

    A directory without config.json that holds exactly one .gguf file stands for that file.
    Raises FileNotFoundError / `UsageError` with one line naming the offending file.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory (expected {_EXPECTED})")
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            _check_gguf_header(path)
            return gguf_checkpoint(path)
        raise UsageError(f"{path}: unsupported model file {path.suffix or '(no suffix)'!r} (expected {_EXPECTED})")
    if not (path / "config.json").is_file():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return resolve_checkpoint(ggufs[0])
        hint = f"; it holds several .gguf files, pass one: {', '.join(g.name for g in ggufs)}" if ggufs else ""
        raise FileNotFoundError(f"{path} is not a Hugging Face checkpoint directory (no config.json){hint}")
    check_checkpoint_dir(path)
    return path


def check_checkpoint_dir(path: Path) -> None:
    """config.json parses to an object, weights exist, and every safetensors header reads."""
    from safetensors import safe_open

    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"{config_file}: not valid JSON ({error})") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise UsageError(f"{config_file}: expected a JSON object with a 'model_type' field")
    weights = [file for pattern in _WEIGHT_PATTERNS for file in sorted(path.glob(pattern))]
    if not weights:
        raise FileNotFoundError(f"{path}: no weights next to config.json (model*.safetensors or pytorch_model*.bin)")
    for file in weights:
        if file.suffix != ".safetensors":
            continue
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except Exception as error:  # safetensors raises its own SafetensorError (an Exception)
            raise UsageError(f"{file}: not a readable safetensors file ({error})") from None


def _check_gguf_header(path: Path) -> None:
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise UsageError(f"{path}: not a GGUF file (it does not start with the GGUF magic bytes)")


def load_tokenizer(path: str | Path) -> Any:
    """The tokenizer of a checkpoint directory or .gguf file (local files only)."""
    from transformers import AutoTokenizer

    directory = resolve_checkpoint(path)
    try:
        return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as error:
        raise UsageError(f"{directory}: cannot load the tokenizer: {_first_line(error)}") from None


def load_causal_lm(
    path: str | Path, *, dtype: Any = torch.float32, attn_implementation: str = "sdpa", device: str | None = None
) -> Any:
    """`AutoModelForCausalLM` from a checkpoint directory or .gguf file; load errors become one line."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    directory = resolve_checkpoint(path)
    torch_dtype = resolve_dtype(dtype, resolve_device(device or "auto")) if isinstance(dtype, str) else dtype
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(directory), local_files_only=True, dtype=torch_dtype, attn_implementation=attn_implementation
        )
    except (OSError, KeyError, SafetensorError) as error:
        raise UsageError(f"{directory}: cannot load the model weights: {_first_line(error)}") from None
    return model if device is None else model.to(resolve_device(device))


def load_model_and_tokenizer(
    path: str | Path, *, dtype: str = "auto", device: str = "auto", attn_implementation: str = "sdpa"
) -> tuple[Any, Any]:
    """Model in eval mode and its tokenizer from a checkpoint or .gguf; the tokenizer must have the memento tokens.

    dtype 'auto' keeps the checkpoint's dtype on GPU and uses float32 on CPU.
    """
    directory = resolve_checkpoint(path)
    tokenizer = load_tokenizer(directory)
    missing = [t for t in MEMENTO_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        raise ValueError(
            f"the tokenizer in {path} lacks the memento tokens {missing}: this is not a memento model "
            "(train one with `memento train`)"
        )
    target = resolve_device(device)
    model = load_causal_lm(
        directory, dtype=resolve_dtype(dtype, target), attn_implementation=attn_implementation, device=str(target)
    )
    return model.eval(), tokenizer


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__

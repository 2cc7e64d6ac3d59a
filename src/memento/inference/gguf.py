"""A `.gguf` file as an ordinary Hugging Face checkpoint, converted once and cached.

transformers reads GGUF (`from_pretrained(folder, gguf_file=name)`, with the `gguf` package) and
dequantises it to a plain torch model, but refuses to `save_pretrained` that model. We rebuild
the architecture from its config (without the GGUF quantization entry), `load_state_dict` the
dequantised weights with strict=True (every key must match), and save model + tokenizer as
safetensors under ``<cache>/gguf/<sha256 of the file>/``. Later loads read that folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from memento.cache_dir import cache_path
from memento.errors import UsageError

logger = logging.getLogger("memento.inference")

CONVERSION_VERSION = 1  # part of the cache key: bump when the conversion's output changes
MARKER = "memento_gguf.json"


def file_digest(path: Path, chunk_bytes: int = 1 << 24) -> str:
    """sha256 of the file's bytes (hex)."""
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            hasher.update(chunk)
    return hasher.hexdigest()


def gguf_cache_dir(digest: str) -> Path:
    """Where the checkpoint converted from the file with this sha256 lives (it need not exist yet)."""
    return cache_path("gguf", f"{digest[:32]}-v{CONVERSION_VERSION}")


def gguf_checkpoint(path: str | Path) -> Path:
    """The cached Hugging Face checkpoint directory for a `.gguf` file, converting it on first use."""
    path = Path(path).expanduser().resolve()
    digest = file_digest(path)
    directory = gguf_cache_dir(digest)
    if (directory / MARKER).is_file():
        return directory
    logger.info("converting %s to a safetensors checkpoint in %s (once)", path, directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=directory.name + ".", dir=directory.parent))
    try:
        convert_gguf(path, staging, digest)
        try:
            os.replace(staging, directory)
        except OSError:
            if not (directory / MARKER).is_file():  # not a concurrent conversion that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def convert_gguf(path: Path, output: Path, digest: str) -> None:
    """Dequantise `path` and write an ordinary checkpoint (config, safetensors weights, tokenizer) to `output`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        from transformers.utils import is_gguf_available

        if not is_gguf_available():
            raise ImportError
    except ImportError:
        raise UsageError(f"{path}: reading GGUF files needs the gguf package (pip install gguf)") from None
    try:
        loaded = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32, local_files_only=True
        )
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    except (ValueError, OSError, KeyError, RuntimeError) as error:
        raise UsageError(f"{path}: not a GGUF model transformers can read ({_first_line(error)})") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantised: this is now a plain checkpoint
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True, assign=True)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))
    marker = {"source": str(path), "sha256": digest, "conversion_version": CONVERSION_VERSION}
    (output / MARKER).write_text(json.dumps(marker, indent=2))
    output.chmod(0o755)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__

"""Which GPU configurations have passed `memento verify` on this machine, and the check `memento serve` runs.

A pass is recorded per configuration (`configuration`: the releases of vLLM, torch, memento and the
plugin's code, the device, the attention backend, model and KV cache dtypes, block size, graph mode,
the model's attention geometry and the masking config: what decides whether memento attention is
exact). `memento serve` on CUDA runs `memento verify` (a separate process: it loads vLLM itself) for
a configuration not yet recorded and refuses to serve when it fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from memento import __version__
from memento.cache_dir import ENVIRONMENT_VARIABLE, cache_path, cache_root
from memento.config import MementoConfig
from memento.errors import UsageError
from memento.vllm.checks import StartupError, installed_vllm_version

GPU_STATUS = (
    "memento: GPU serving with vLLM is verified by emulation only (vLLM's FLASH_ATTN and TRITON_ATTN metadata "
    "builders fed by the plugin's rewrite and TRITON_ATTN's kernels in Triton's interpreter, on CPU); no real "
    "GPU-vLLM run has passed in memento's own tests yet: `memento verify` checks this machine"
)
GEOMETRY_FIELDS = (
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_size",
    "rope_parameters",
    "rope_theta",
)


def verified_file() -> Path:
    return cache_path("vllm_verified.json")


def check_cache_directory() -> None:
    """Refuse, before any work, a cache directory the record of passes cannot be written to (one line)."""
    root = cache_root()
    where = f"{ENVIRONMENT_VARIABLE}={root}" if os.environ.get(ENVIRONMENT_VARIABLE) else f"cache directory {root}"
    problem = None
    if root.exists() and not root.is_dir():
        problem = "is a file, not a directory"
    else:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            problem = f"cannot be created ({error.strerror})"
        else:
            if not os.access(root, os.W_OK | os.X_OK):
                problem = "is not writable"
            elif verified_file().is_dir():
                problem = f"holds a folder where its file {verified_file().name} goes"
    if problem is not None:
        raise UsageError(
            f"{where} {problem}: memento serve records the configurations memento verify passed there; "
            f"point {ENVIRONMENT_VARIABLE} at a writable directory"
        )


def _plugin_digest() -> str:
    """A digest of the plugin's sources: a pass recorded by other plugin code is not reused."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


def configuration(
    model: str | Path,
    dtype: str,
    attention_backend: str | None,
    enforce_eager: bool,
    block_size: int | None = None,
    *,
    kv_cache_dtype: str = "auto",
    memento_config: MementoConfig | None = None,
) -> dict[str, Any]:
    """What a verification pass stands for (a JSON-able dict): everything that changes memento's attention path.

    The releases (vLLM, torch, memento and a digest of the plugin's code), the device, the attention backend,
    model dtype, KV cache dtype, block size and graph mode as vLLM will run them, the model's attention geometry
    and config (memento verify checks random weights of that geometry by default) and the masking config.
    """
    import torch

    config_file = Path(model) / "config.json"
    config = json.loads(config_file.read_text())
    text = config.get("text_config", config)
    return {
        "vllm": installed_vllm_version(),
        "torch": torch.__version__,
        "memento": __version__,
        "plugin": _plugin_digest(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "attention_backend": attention_backend,
        "dtype": dtype,
        "kv_cache_dtype": kv_cache_dtype,
        "enforce_eager": enforce_eager,
        "block_size": block_size,
        "geometry": {name: text.get(name) for name in GEOMETRY_FIELDS},
        "model_config_sha256": hashlib.sha256(config_file.read_bytes()).hexdigest(),
        "masking": None if memento_config is None else memento_config.to_dict(),
    }


def _is_pass(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("configuration"), dict)
        and isinstance(entry.get("verdict"), dict)
    )


def recorded_passes(warn: bool = True) -> list[dict[str, Any]]:
    """The passes recorded on this machine; a damaged record is ignored (one line on stderr when `warn`)."""
    file = verified_file()
    try:
        passes = json.loads(file.read_text())
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        passes, reason = None, " ".join(str(error).split())
    else:
        reason = "expected a JSON list of recorded passes"
    if isinstance(passes, list) and all(_is_pass(entry) for entry in passes):
        return passes
    if warn:
        print(f"memento: ignoring the damaged {file} ({reason}); it is rewritten after the next pass", file=sys.stderr)
    return []


def ensure_verified(
    model: str | Path,
    dtype: str,
    attention_backend: str | None = None,
    enforce_eager: bool = False,
    block_size: int | None = None,
    *,
    kv_cache_dtype: str = "auto",
    memento_config: MementoConfig | None = None,
) -> tuple[dict[str, Any], bool]:
    """The recorded pass for this configuration, else run `memento verify` now: (its verdict, whether it ran).

    Raises `StartupError` (one line, the difference) when verification fails.
    """
    wanted = configuration(
        model,
        dtype,
        attention_backend,
        enforce_eager,
        block_size,
        kv_cache_dtype=kv_cache_dtype,
        memento_config=memento_config,
    )
    for recorded in recorded_passes():
        if recorded.get("configuration") == wanted:
            return recorded["verdict"], False
    command = [sys.executable, "-m", "memento.cli", "verify", "--model", str(model), "--dtype", dtype, "--json"]
    if attention_backend is not None:
        command += ["--attention-backend", attention_backend]
    if enforce_eager:
        command.append("--enforce-eager")
    if block_size is not None:
        command += ["--block-size", str(block_size)]
    from memento.vllm.verify import unverifiable

    if memento_config is not None and memento_config.enable and not unverifiable(memento_config):
        command += ["--block-masking-config", json.dumps(memento_config.to_dict())]  # checked beside the built-in two
    process = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (process.stderr.strip().splitlines() or ["no output"])[-1]
        raise StartupError(f"memento verify could not run on this configuration ({tail}); not serving")
    try:
        verdict = json.loads(lines[-1])
    except json.JSONDecodeError:
        verdict = None
    if not isinstance(verdict, dict):
        raise StartupError(f"memento verify printed no verdict on this configuration ({lines[-1][:200]}); not serving")
    if "error" in verdict:  # refused or interrupted: no verdict
        raise StartupError(f"memento verify could not run on this configuration ({verdict['error']}); not serving")
    if verdict.get("can_tell") is False:
        raise StartupError(
            f"memento verify could not tell masked from unmasked attention on this configuration: the unmasked "
            f"control is off by only {verdict.get('control_max_abs_logprob_diff')} (tolerance "
            f"{verdict.get('tolerance')}); not serving (--skip-verify serves anyway, unverified)"
        )
    if not verdict.get("passed"):
        raise StartupError(
            f"memento verify FAILED on this configuration ({verdict.get('attention_backend')}, {dtype}): largest "
            f"log-prob difference {verdict.get('max_abs_logprob_diff')} at {verdict.get('worst')}, tokens equal "
            f"{verdict.get('tokens_equal')}; not serving (--skip-verify serves anyway, at the risk of wrong attention)"
        )
    file = verified_file()
    partial = file.with_name(f"{file.name}.{os.getpid()}.tmp")  # a whole file or none: serves may race
    passes = [*recorded_passes(warn=False), {"configuration": wanted, "verdict": verdict}]
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(passes, indent=1))
        os.replace(partial, file)
    except OSError as error:
        print(f"memento: could not record the pass in {file} ({error.strerror}); serving anyway", file=sys.stderr)
    return verdict, True

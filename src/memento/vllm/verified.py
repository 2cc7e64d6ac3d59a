"""Which GPU configurations have passed `memento verify` on this machine, and the check `memento serve` runs.

A pass is recorded per configuration: vLLM and torch releases, the device, the attention backend,
the dtype, the graph mode and the model's attention geometry (what decides whether memento
attention is exact). `memento serve` on CUDA runs `memento verify` (a separate process: it loads
vLLM itself) for a configuration not yet recorded and refuses to serve when it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from memento.cache_dir import cache_path
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


def configuration(
    model: str | Path, dtype: str, attention_backend: str | None, enforce_eager: bool, block_size: int | None = None
) -> dict[str, Any]:
    """What a verification pass stands for (a JSON-able dict)."""
    import torch

    config = json.loads((Path(model) / "config.json").read_text())
    text = config.get("text_config", config)
    return {
        "vllm": installed_vllm_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "attention_backend": attention_backend,
        "dtype": dtype,
        "enforce_eager": enforce_eager,
        "block_size": block_size,
        "geometry": {name: text.get(name) for name in GEOMETRY_FIELDS},
    }


def recorded_passes() -> list[dict[str, Any]]:
    try:
        return json.loads(verified_file().read_text())
    except (OSError, json.JSONDecodeError):
        return []


def ensure_verified(
    model: str | Path,
    dtype: str,
    attention_backend: str | None = None,
    enforce_eager: bool = False,
    block_size: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """The recorded pass for this configuration, else run `memento verify` now: (its verdict, whether it ran).

    Raises `StartupError` (one line, the difference) when verification fails.
    """
    wanted = configuration(model, dtype, attention_backend, enforce_eager, block_size)
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
    process = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (process.stderr.strip().splitlines() or ["no output"])[-1]
        raise StartupError(f"memento verify could not run on this configuration ({tail}); not serving")
    verdict = json.loads(lines[-1])
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
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_name(f"{file.name}.{os.getpid()}.tmp")  # a whole file or none: serves may race
    partial.write_text(json.dumps([*recorded_passes(), {"configuration": wanted, "verdict": verdict}], indent=1))
    os.replace(partial, file)
    return verdict, True

"""What a bench table was measured with: the exact command, versions, machine and source tree."""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch
import transformers

import memento


def describe(device: str = "cpu") -> str:
    """Multi-line header: command line, Python/torch/transformers versions, device, memento's commit."""
    source = Path(memento.__file__).resolve().parent
    commit = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(source), "status", "--porcelain", "--", "."], capture_output=True, text=True, check=False
    ).stdout.strip()
    if device.startswith("cuda") and torch.cuda.is_available():
        hardware = torch.cuda.get_device_name(torch.device(device))
    else:
        hardware = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return "\n".join(
        [
            f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}",
            f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}",
            f"device: {device} ({hardware})",
            f"memento: {source} at {commit or 'unknown commit'}{' (modified)' if dirty else ''}",
        ]
    )

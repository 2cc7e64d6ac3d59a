"""Part 5 of bench/gpu_check.py, run only where vLLM's CUDA build is importable: the real cache-write op, then
`memento verify` on a production-like geometry. Each step in its own process (an illegal address or a
device-side assert kills that process, not the check).

1. op probe (`python bench/gpu_check_vllm.py probe`): vLLM's CUDA `reshape_and_cache_flash` (what
   FLASH_ATTN and FLASHINFER write through) on caches laid out as FLASH_ATTN's (NHD pages, head size 128,
   4 KV heads), inside a guarded buffer: the start-up self-check (`kv_mover.check_cache_layout`) with its
   cache-dtype probes passes in bf16 and fp16, and the op's bytes equal the strict stand-in's
   (`memento.vllm.op_contracts`) in bf16, fp16 and fp8, with no byte outside the cache touched.
2. raw float32 probes (`probe --raw-fp32`, last of the op steps, informational): the same op handed float32
   keys for a bf16 cache, what the self-check did before issue 30.1; reports how many bytes outside the
   target slots changed and whether the tokens read back (or that the process died).
3. `memento verify --dtype bfloat16` (vLLM's default backend for bf16 on CUDA, FLASH_ATTN; vLLM's default
   graph mode) on a random 2-layer model of 16 query / 4 KV heads of size 128 with the toy tokenizer.

On CPU (`gpu_check.py --cpu-smoke`) step 1 runs with the stand-in in place of the op (the script is not
broken), steps 2-3 report "skipped".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HEAD_SIZE, KV_HEADS, BLOCK_SIZE, BLOCKS = 128, 4, 16, 8
GUARD = 4096  # bytes either side of the cache in its buffer, filled with GUARD_BYTE: any change is a stray write
GUARD_BYTE = 0xA5


def cuda_vllm_missing() -> str | None:
    """Why the vLLM part cannot run here (None: a CUDA device and an importable vLLM; its build is checked by
    the probe process, which imports it)."""
    import importlib.util

    if not torch.cuda.is_available():
        return "no CUDA device"
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed"
    return None


# ---- the probe process ------------------------------------------------------------------------------------


def guarded_cache(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(logical [BLOCKS, KV_HEADS, BLOCK_SIZE, 2*HEAD_SIZE] cache over NHD pages, the whole byte buffer)."""
    element = torch.empty((), dtype=dtype).element_size()
    size = BLOCKS * BLOCK_SIZE * KV_HEADS * 2 * HEAD_SIZE * element
    buffer = torch.full((GUARD + size + GUARD,), GUARD_BYTE, dtype=torch.uint8, device=device)
    buffer[GUARD : GUARD + size] = 0
    pages = buffer[GUARD : GUARD + size].view(dtype).view(BLOCKS, BLOCK_SIZE, KV_HEADS, 2 * HEAD_SIZE)
    return pages.permute(0, 2, 1, 3), buffer


def guards_intact(buffer: torch.Tensor) -> bool:
    return bool((buffer[:GUARD] == GUARD_BYTE).all()) and bool((buffer[-GUARD:] == GUARD_BYTE).all())


def probe(op_name: str, device: torch.device, raw_fp32: bool) -> dict:
    """Rows of the op probe (see the module docstring); `op_name`: "real" (vLLM's CUDA op) or "standin"."""
    from memento.vllm import kv_mover, op_contracts

    if op_name == "real":
        from vllm import _custom_ops  # noqa: F401  (registers torch.ops._C_cache_ops)

        op = torch.ops._C_cache_ops.reshape_and_cache_flash
    else:
        op = op_contracts.reshape_and_cache_flash
    scale = torch.ones((), dtype=torch.float32, device=device)

    def writer(cache: torch.Tensor, kv_cache_dtype: str):
        def write(key: torch.Tensor, value: torch.Tensor, slots: torch.Tensor) -> None:
            key_cache, value_cache = cache.transpose(1, 2).split(HEAD_SIZE, dim=-1)  # as FLASH_ATTN's impl
            op(key, value, key_cache, value_cache, slots, kv_cache_dtype, scale, scale)
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # an illegal address surfaces here, inside this process

        return write

    if raw_fp32:  # block 3's slots: at the doubled offsets of 4-byte elements they land in blocks 6-7
        cache, buffer = guarded_cache(torch.bfloat16, device)
        before = buffer.to("cpu", copy=True)
        key = torch.randn(BLOCK_SIZE, KV_HEADS, HEAD_SIZE, generator=torch.Generator().manual_seed(0))
        slots = torch.arange(3 * BLOCK_SIZE, 4 * BLOCK_SIZE)
        try:
            writer(cache, "auto")(key.to(device), key.to(device), slots.to(device))  # float32, the cache bf16
        except Exception as error:  # the strict stand-in refuses (and a CUDA build that checked would)
            return {"raw_fp32": "refused", "error": f"{type(error).__name__}: {error}".splitlines()[0][:300]}
        intended, intended_buffer = guarded_cache(torch.bfloat16, torch.device("cpu"))
        one = torch.ones((), dtype=torch.float32)
        split = intended.transpose(1, 2).split(HEAD_SIZE, dim=-1)
        op_contracts.reshape_and_cache_flash(key.bfloat16(), key.bfloat16(), *split, slots, "auto", one, one)
        changed, meant = buffer.cpu() != before, intended_buffer != before
        return {
            "raw_fp32": "written",
            "bytes_changed_outside_the_target_slots": int((changed & ~meant).sum()),
            "tokens_read_back": torch.equal(cache.cpu(), intended),
        }

    rows = []
    generator = torch.Generator().manual_seed(0)
    slots = torch.randperm(BLOCKS * BLOCK_SIZE, generator=generator)[:40]
    slots[::7] = -1  # padding tokens
    for name, kv_cache_dtype, model_dtype, cache_dtype in (
        ("bf16", "auto", torch.bfloat16, torch.bfloat16),
        ("fp16", "auto", torch.float16, torch.float16),
        ("fp8", "fp8", torch.bfloat16, torch.uint8),
    ):
        row: dict = {"cache": name}
        cache, buffer = guarded_cache(cache_dtype, device)
        scratch = kv_mover.scratch_like(cache)  # the self-check zeroes and compares a whole storage of its own
        kv_mover.check_cache_layout(scratch, writer(scratch, kv_cache_dtype), HEAD_SIZE, model_dtype)
        row["self_check"] = True  # it raises otherwise
        key = torch.randn(len(slots), KV_HEADS, HEAD_SIZE, generator=generator).to(model_dtype)
        value = torch.randn(len(slots), KV_HEADS, HEAD_SIZE, generator=generator).to(model_dtype)
        writer(cache, kv_cache_dtype)(key.to(device), value.to(device), slots.to(device))
        reference, _ = guarded_cache(cache_dtype, torch.device("cpu"))
        one = torch.ones((), dtype=torch.float32)
        split = reference.transpose(1, 2).split(HEAD_SIZE, dim=-1)
        op_contracts.reshape_and_cache_flash(key, value, *split, slots, kv_cache_dtype, one, one)
        row["bytes_equal_standin"] = torch.equal(cache.view(torch.uint8).cpu(), reference.view(torch.uint8))
        row["guards_intact"] = guards_intact(buffer)
        rows.append(row)
    return {"op": op_name, "rows": rows, "ok": all(r["bytes_equal_standin"] and r["guards_intact"] for r in rows)}


# ---- the part, run by gpu_check.py -----------------------------------------------------------------------


def production_checkpoint(directory: Path) -> Path:
    """A config-only checkpoint (no weights: verify builds a random 2-layer model) with 16 query and 4 KV heads
    of size 128, and the toy checkpoint's memento tokenizer."""
    from memento.toy import CHECKPOINT

    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        if (CHECKPOINT / name).exists():
            shutil.copy(CHECKPOINT / name, directory / name)
    config = json.loads((CHECKPOINT / "config.json").read_text())
    config.update(
        hidden_size=16 * HEAD_SIZE,
        num_attention_heads=16,
        num_key_value_heads=KV_HEADS,
        head_dim=HEAD_SIZE,
        intermediate_size=4096,
        num_hidden_layers=2,
        layer_types=["full_attention"] * 2,
        max_position_embeddings=4096,
    )
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory


def _run(command: list[str], timeout: float) -> tuple[int | None, str, str]:
    """(exit status or None on timeout, stdout, stderr tail) of a child process in this one's environment."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=max(timeout, 1), env=env)
    except subprocess.TimeoutExpired as expired:
        return None, (expired.stdout or b"").decode(errors="replace"), "timed out"
    return done.returncode, done.stdout, done.stderr[-2000:]


def _last_json(stdout: str) -> dict | None:
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def part_vllm(smoke: bool, budget: float) -> dict:
    """The op probe, the raw float32 probe and `memento verify` on a production-like geometry (module docstring)."""
    deadline = time.monotonic() + budget
    missing = None if smoke else cuda_vllm_missing()
    if missing is not None:
        print(f"skipped: {missing}")
        return {"ok": True, "skipped": missing}
    script = [sys.executable, str(Path(__file__).resolve())]
    op = "standin" if smoke else "real"
    code, out, err = _run([*script, "probe", "--op", op, "--device", "cpu" if smoke else "cuda"], 90)
    probed = _last_json(out) or {"ok": False, "error": f"exit {code}: {err.strip().splitlines()[-1:]}"}
    print(f"op probe ({op} reshape_and_cache_flash, head size {HEAD_SIZE}, {KV_HEADS} KV heads, NHD pages):")
    for row in probed.get("rows", []):
        print(f"  {row}")
    summary: dict = {"probe": probed}
    if smoke:
        with tempfile.TemporaryDirectory() as directory:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(production_checkpoint(Path(directory)))
            summary["geometry"] = [config.num_attention_heads, config.num_key_value_heads, config.head_dim]
        summary["raw_fp32"] = summary["verify"] = {"skipped": "cpu smoke"}
        summary["ok"] = bool(probed.get("ok")) and summary["geometry"] == [16, KV_HEADS, HEAD_SIZE]
        return summary
    code, out, err = _run([*script, "probe", "--raw-fp32", "--device", "cuda"], 60)
    summary["raw_fp32"] = _last_json(out) or {"process": f"died (exit {code})", "stderr": err.strip()[-300:]}
    print(f"raw float32 probes into a bf16 cache (informational): {summary['raw_fp32']}")
    with tempfile.TemporaryDirectory() as directory:
        model = production_checkpoint(Path(directory))
        command = [sys.executable, "-m", "memento.cli", "verify", "--model", str(model), "--backend", "vllm"]
        command += ["--dtype", "bfloat16", "--json"]
        code, out, err = _run(command, deadline - time.monotonic())
    verdict = _last_json(out)
    summary["verify"] = {"exit": code, "verdict": verdict, "stderr": None if verdict else err.strip()[-500:]}
    print(f"memento verify, bf16, 16/{KV_HEADS} heads of {HEAD_SIZE}: exit {code}, {verdict}")
    summary["ok"] = bool(probed.get("ok")) and code == 0 and bool(verdict and verdict.get("passed"))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description="gpu_check's vLLM op probe (run in its own process)")
    parser.add_argument("step", choices=["probe"])
    parser.add_argument("--op", choices=["real", "standin"], default="real")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--raw-fp32", action="store_true")
    args = parser.parse_args()
    print(json.dumps(probe(args.op, torch.device(args.device), args.raw_fp32)), flush=True)


if __name__ == "__main__":
    main()

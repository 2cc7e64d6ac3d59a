"""Run one in-process vLLM engine over a list of jobs (JSON on stdin) and print the results as JSON.

A separate process keeps vLLM's process-wide settings (threads, memory binding, plugin
registration) out of the test runner; one engine serves every job of a test module.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    spec = json.load(sys.stdin)
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # engine core in this process: starts in seconds
    from memento.config import MementoConfig
    from memento.vllm.engine import offline_llm

    default = None if spec["engine_config"] is None else MementoConfig.from_dict(spec["engine_config"])
    llm = offline_llm(
        spec["model"],
        default,
        dtype="float32",
        enforce_eager=True,
        block_size=spec.get("block_size", 32),
        num_gpu_blocks_override=spec["num_blocks"],
        max_model_len=spec.get("max_model_len", 1024),
        max_num_seqs=spec.get("max_num_seqs", 16),
        gpu_memory_utilization=0.2,  # the pool is fixed by num_gpu_blocks_override; other processes share the node
        seed=0,
        max_logprobs=-1,  # prompt_logprobs may ask for the whole vocabulary
    )
    from vllm import SamplingParams

    scheduler = llm.llm_engine.engine_core.engine_core.scheduler
    results = []
    for job in spec["jobs"]:
        extra = None if job.get("config") is None else {"block_masking_config": job["config"]}
        params = SamplingParams(
            temperature=0,
            max_tokens=job["max_tokens"],
            skip_special_tokens=False,
            extra_args=extra,
            prompt_logprobs=job.get("prompt_logprobs"),
            logprobs=job.get("logprobs"),
        )
        released = getattr(scheduler, "memento_blocks_released", 0)
        restarts = getattr(scheduler, "memento_restarts", 0)
        scheduler.memento_peak_blocks_in_use = 0
        preemptions = scheduler.memento_preemptions
        outputs = llm.generate([{"prompt_token_ids": ids} for ids in job["prompt_ids"]], params, use_tqdm=False)
        results.append(
            {
                "token_ids": [list(o.outputs[0].token_ids) for o in outputs],
                "prompt_logprobs": [  # per prompt position i >= 1: {token id: log p(token | prompt[:i])}
                    [{token: entry.logprob for token, entry in position.items()} for position in o.prompt_logprobs[1:]]
                    for o in outputs
                ]
                if job.get("prompt_logprobs")
                else None,
                "logprobs": [  # per generated token: {token id: log p(token | everything before)}
                    [{token: entry.logprob for token, entry in step.items()} for step in o.outputs[0].logprobs]
                    for o in outputs
                ]
                if job.get("logprobs")
                else None,
                "blocks_released": getattr(scheduler, "memento_blocks_released", 0) - released,
                "peak_blocks_in_use": scheduler.memento_peak_blocks_in_use,
                "preemptions": scheduler.memento_preemptions - preemptions,
                "restarts": getattr(scheduler, "memento_restarts", 0) - restarts,
            }
        )
    print("MEMENTO-RESULTS " + json.dumps(results), flush=True)
    llm.llm_engine.engine_core.shutdown()  # the engine's workers and threads end now, not at interpreter exit


if __name__ == "__main__":
    main()

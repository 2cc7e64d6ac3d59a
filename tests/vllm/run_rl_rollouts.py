"""RL with vLLM rollouts in one process (one engine), the measurements printed as JSON for the tests.

A separate process keeps vLLM's process-wide settings (threads, memory binding, plugin
registration, environment) out of the test runner. On the toy model in fp32 it measures:

* ``evict`` / ``plain``: vLLM's sampling log-probs under eviction, and with masking off in vLLM
  only, against the trainer's memento-masked log-probs of the same tokens (mean and max gap);
* ``trained``: `run_rl` for two CISPO steps on this engine (checkpoint-1 saved), then a greedy
  rollout from the engine, which TRL reloaded before step 2's rollouts, with the trainer's
  memento log-probs of the checkpoint-1 and the starting weights on its tokens.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import torch


def gaps(model, special_ids, config, prompt_ids, completion_ids, logprobs) -> dict:
    """Mean and max |trainer memento log-prob - vLLM log-prob| over every sampled token."""
    from memento.rl import token_logprobs

    differences = []
    for prompt, completion, sampled in zip(prompt_ids, completion_ids, logprobs, strict=True):
        ids = torch.tensor([prompt + completion])
        with torch.no_grad():
            trainer = token_logprobs(model, ids, special_ids, config)[0, len(prompt) - 1 :]
        differences.append((trainer - torch.tensor(sampled)).abs())
    flat = torch.cat(differences)
    return {"mean": flat.mean().item(), "max": flat.max().item(), "tokens": flat.numel()}


def main() -> None:
    spec = json.load(sys.stdin)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memento.config import MementoConfig
    from memento.eval import Problem
    from memento.format import SpecialIds
    from memento.inference.sampling import SamplingOptions
    from memento.rl.options import RLOptions
    from memento.rl.rollout import encode_prompt
    from memento.rl.run import run_rl
    from memento.rl.vllm_engine import RolloutEngine
    from memento.rl.vllm_rollout import VLLMRollout
    from memento.toy.task import ToyTask

    model_dir, output = Path(spec["model"]), Path(spec["output"])
    engine = RolloutEngine(
        model_dir, dtype="float32", block_size=32, num_gpu_blocks_override=512, max_model_len=1024, max_num_seqs=16
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    special_ids = SpecialIds.from_tokenizer(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    evict = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)
    plain = MementoConfig(keep_last_n_blocks=-1, mask_delimiters=False)
    task = ToyTask()
    prompts = [trace.prompt for _, trace in task.examples(4, 11)]
    sampling = SamplingOptions(temperature=1.0, max_new_tokens=spec["max_tokens"])
    result: dict = {}
    for name, config in (("evict", evict), ("plain", plain)):
        released = engine.scheduler.memento_blocks_released
        out = VLLMRollout(engine, tokenizer, config, sampling).generate(model, prompts)
        result[name] = gaps(model, special_ids, evict, out["prompt_ids"], out["completion_ids"], out["logprobs"])
        result[name]["blocks_released"] = engine.scheduler.memento_blocks_released - released
        result[name]["blocks_per_completion"] = out["blocks"]
        # the completion text as MementoGenerator writes it (special tokens and the final <|im_end|> kept)
        result[name]["texts"] = out["completion_text"]
        result[name]["decoded"] = [tokenizer.decode(ids, skip_special_tokens=False) for ids in out["completion_ids"]]
        result[name]["finished"] = sum(ids[-1] == tokenizer.eos_token_id for ids in out["completion_ids"])

    # carry-heavy problems (numbers 4..9): the groups' rewards differ, so the step moves the weights
    rng = random.Random(5)
    problems = []
    for index in range(4):
        numbers = [rng.randrange(4, task.modulus) for _ in range(task.steps)]
        problems.append(
            Problem(id=f"p{index}", problem=task.prompt(numbers), answer=str(task.answer(numbers)), kind="toy")
        )
    options = RLOptions(
        model=str(model_dir),
        output=str(output),
        rollouts="vllm",
        num_generations=4,
        prompts_per_step=2,
        max_steps=2,
        save_steps=1,
        learning_rate=spec["learning_rate"],
        max_completion_length=spec["max_tokens"],
        config=json.dumps({"enable": True, "keep_last_n_blocks": 0, "mask_delimiters": False}),
    )
    loads = engine.weight_loads
    run_rl(options, problems=problems, engine=engine)
    result["weight_loads"] = engine.weight_loads - loads
    result["log_history"] = json.loads((output / "memento_rl.json").read_text())["log_history"]

    released = engine.scheduler.memento_blocks_released
    prompt_ids = [encode_prompt(tokenizer, prompt) for prompt in prompts]
    greedy, _ = engine.generate(prompt_ids, evict, temperature=0.0, max_new_tokens=spec["max_tokens"])
    result["greedy"] = {
        "prompt_ids": prompt_ids,
        "token_ids": [r.token_ids for r in greedy],
        "logprobs": [r.logprobs for r in greedy],
        "blocks_released": engine.scheduler.memento_blocks_released - released,
    }
    tokens = [r.token_ids for r in greedy]
    logprobs = [r.logprobs for r in greedy]
    step_one = AutoModelForCausalLM.from_pretrained(output / "checkpoint-1", dtype=torch.float32)
    result["greedy"]["vs_checkpoint_1"] = gaps(step_one, special_ids, evict, prompt_ids, tokens, logprobs)
    result["greedy"]["vs_start"] = gaps(model, special_ids, evict, prompt_ids, tokens, logprobs)
    engine.close()
    print("MEMENTO-RESULTS " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

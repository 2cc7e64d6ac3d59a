"""RL rollout speed: vLLM with the memento plugin vs transformers (`MementoGenerator`), same batch, on CPU.

Both engines run what `memento rl` runs for one step's rollouts (`VLLMRollout` / `MementoRollout`,
blocks evicted, temperature 1) on the same toy prompts at the same batch, interleaved and repeated
(the engine that goes first alternates by round). Reported per engine: rollouts per second (mean +- sd
over rounds), new tokens per second, and peak KV per rollout: for both, the tokens a rollout holds at
its peak (`memento.kv.simulate` replaying it; what `MementoGenerator`'s cache holds); for vLLM also the
pool's peak blocks in use x block size / batch (whole blocks, as vLLM allocates them). The ratio
vLLM / HF is given per round, with its mean, median and range. Both sample the same policy, so their
rollouts' share of right answers (the toy checker) and mean sequence log-prob must agree within their
standard errors: a check of the sampling, pooled over rounds.

    .venv/bin/python bench/rl_rollouts.py                       # batch 32, 10 rounds
    .venv/bin/python bench/rl_rollouts.py --batch 8 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import transformers

from memento.config import MementoConfig
from memento.inference.loading import load_model_and_tokenizer
from memento.inference.sampling import SamplingOptions
from memento.rl.rollout import KV_PEAK_TOKENS, MementoRollout
from memento.rl.vllm_engine import RolloutEngine
from memento.rl.vllm_rollout import VLLMRollout
from memento.toy.task import ToyTask, parse_answer
from memento.toy.train import CHECKPOINT


def spread(values: list[float]) -> str:
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3g} +- {sd:.2g} "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="rollouts per call (one RL step's G x prompts)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (hf, vllm) per measurement")
    parser.add_argument("--max-new-tokens", type=int, default=640)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads of the transformers side")
    parser.add_argument("--output", help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    model, tokenizer = load_model_and_tokenizer(CHECKPOINT, dtype="float32", device="cpu")
    config = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False)
    sampling = SamplingOptions(temperature=1.0, max_new_tokens=args.max_new_tokens)
    engine = RolloutEngine(
        CHECKPOINT,
        dtype="float32",
        max_num_seqs=args.batch,
        max_model_len=1024,
        block_size=32,
        num_gpu_blocks_override=args.batch * 32 + 1,  # every rollout at full length: no preemption
    )
    print(
        f"versions: python {platform.python_version()}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}; toy model fp32, batch {args.batch}, {args.max_new_tokens} new tokens at most"
    )
    examples = [trace for _, trace in ToyTask().examples(args.batch, 7)]
    prompts = [trace.prompt for trace in examples]
    runners = {
        "hf": MementoRollout(tokenizer, config, sampling, batch_size=args.batch),
        "vllm": VLLMRollout(engine, tokenizer, config, sampling),
    }
    runners["vllm"].generate(model, prompts[:2])  # the first vLLM call sets up its sampler; not timed
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in runners}
    rewards: dict[str, list[float]] = {name: [] for name in runners}
    sequence_logprobs: dict[str, list[float]] = {name: [] for name in runners}
    for round_index in range(args.rounds):
        order = list(runners) if round_index % 2 == 0 else list(runners)[::-1]  # neither engine always runs first
        for name in order:
            runner = runners[name]
            start = time.perf_counter()
            output = runner.generate(model, prompts)
            seconds = time.perf_counter() - start
            tokens = sum(len(ids) for ids in output["completion_ids"])
            texts = [tokenizer.decode(ids, skip_special_tokens=False) for ids in output["completion_ids"]]
            rewards[name] += [float(parse_answer(t) == int(e.answer)) for t, e in zip(texts, examples, strict=True)]
            sequence_logprobs[name] += [sum(logprobs) for logprobs in output["logprobs"]]
            row = figures[name]
            row.setdefault("rollouts_per_s", []).append(len(prompts) / seconds)
            row.setdefault("tokens_per_s", []).append(tokens / seconds)
            row.setdefault("kv_peak_tokens_per_rollout", []).append(statistics.mean(output[KV_PEAK_TOKENS]))
            if name == "vllm":
                stats = runner.last
                row.setdefault("pool_peak_tokens_per_rollout", []).append(
                    stats.peak_blocks * stats.block_size / stats.rollouts
                )
                row.setdefault("blocks_freed", []).append(stats.blocks_released)
            print(
                f"round {round_index + 1} {name}: {len(prompts) / seconds:.2f} rollouts/s, {seconds:.1f} s", flush=True
            )
    ratios = [v / h for v, h in zip(figures["vllm"]["rollouts_per_s"], figures["hf"]["rollouts_per_s"], strict=True)]
    print(f"\n{'engine':<6}{'rollouts/s':>18}{'tokens/s':>22}{'peak KV tok/rollout':>22}{'vLLM pool tok/rollout':>24}")
    for name, row in figures.items():
        pool = spread(row["pool_peak_tokens_per_rollout"]) if "pool_peak_tokens_per_rollout" in row else "-"
        print(
            f"{name:<6}{spread(row['rollouts_per_s']):>18}{spread(row['tokens_per_s']):>22}"
            f"{spread(row['kv_peak_tokens_per_rollout']):>22}{pool:>24}"
        )
    print(
        f"vLLM / HF rollouts per second: {spread(ratios)}(median {statistics.median(ratios):.2f}, range "
        f"{min(ratios):.2f}-{max(ratios):.2f}; per round: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(f"vLLM KV blocks freed per call: {spread(figures['vllm']['blocks_freed'])}")
    for name in runners:
        right, logprobs = rewards[name], sequence_logprobs[name]
        share = statistics.mean(right)
        error = (share * (1 - share) / len(right)) ** 0.5
        mean_logprob = statistics.mean(logprobs)
        logprob_error = statistics.stdev(logprobs) / len(logprobs) ** 0.5
        print(
            f"{name} rollouts right: {share:.1%} +- {error:.1%} of {len(right)}; "
            f"mean sequence log-prob {mean_logprob:.2f} +- {logprob_error:.2f}"
        )
        figures[name]["right_share"] = [share, error]
        figures[name]["sequence_logprob"] = [mean_logprob, logprob_error]
    engine.close()
    if args.output:
        Path(args.output).write_text(json.dumps({"args": vars(args), "figures": figures, "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()

"""vLLM with the memento plugin vs plain vLLM: one workload, one fixed KV pool, runs interleaved and repeated.

The workload is memento-format output forced token by token (the same tokens in every run, so
the comparison measures the cache, not the model's choices): each request writes `--blocks`
blocks of `--block-tokens` tokens, each closed by a memento of `--memento-tokens` (the paper's
traces: ~1,150-token blocks, ~6x compression), then an answer. The model is a randomly
initialised Qwen3 (`--hidden-size`, `--layers`, 8,192 positions) with the embedded toy model's
tokenizer; forced tokens make its weights irrelevant. Each run is its own process (in-process
engine core) with the same pool, batch limit and KV block size, synchronous scheduling in all.

Three modes, run A B C A B C ... (`--repeats` rounds, so drift on a shared machine hits each alike):
plain vLLM as shipped (prefix caching on: every request shares the prompt's KV), plain vLLM
with prefix caching off (as the plugin must run: KV computed under the mask is not reusable),
and the plugin. Printed: per mode the median and range over repeats of requests/s and
generated tok/s, peak KV blocks in use, preemptions, mean running requests per step; then
memento/plain ratios per round (median and range), the exact command and the versions.

    .venv/bin/python bench/vllm_throughput.py              # 16 requests x ~3.7k tokens, 1,100-block pool
    .venv/bin/python bench/vllm_throughput.py --pool 4000  # a pool where nothing is preempted
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

MARKER = "BENCH-RESULT "
MAX_POSITIONS = 8192
MODES = {  # name: (memento masking, vLLM's prefix caching)
    "plain": (False, True),
    "plain-no-pc": (False, False),
    "memento": (True, False),
    "memento-base": (True, False),  # the plugin from another source tree (--baseline-src): before/after a change
}


def write_model(directory: Path, hidden_size: int, layers: int) -> None:
    """A seeded random Qwen3 with the toy tokenizer (head_dim 64, GQA 2:1), saved for vLLM."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3Config

    from memento.toy import CHECKPOINT

    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT)
    heads = max(2, hidden_size // 64)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=3 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads // 2,
        head_dim=64,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def schedule(tokenizer, blocks: int, block_tokens: int, memento_tokens: int, seed: int) -> list[int]:
    """Output token ids of one request: blocks with mementos, `</think>`, a one-digit answer, end."""
    generator = torch.Generator().manual_seed(seed)
    digits = [tokenizer.convert_tokens_to_ids(c) for c in "0123456789"]

    def text(count: int) -> list[int]:
        return [digits[i] for i in torch.randint(len(digits), (count,), generator=generator).tolist()]

    ids = tokenizer.convert_tokens_to_ids
    out = []
    for _ in range(blocks):
        out += [ids("<|block_start|>"), *text(block_tokens), ids("<|block_end|>")]
        out += [ids("<|summary_start|>"), *text(memento_tokens), ids("<|summary_end|>")]
    return [*out, ids("</think>"), *text(1), ids("<|im_end|>")]


def run(mode: str, options: argparse.Namespace) -> dict:
    """One engine, the whole workload; returns its figures (child process)."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    from memento.config import MementoConfig
    from memento.vllm.engine import offline_llm

    masked, prefix_caching = MODES[mode]
    config = MementoConfig(keep_last_n_blocks=0, mask_delimiters=False) if masked else None
    caching = {} if masked else {"enable_prefix_caching": prefix_caching}  # the plugin turns it off itself
    from transformers import AutoTokenizer
    from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
    from vllm.v1.sample.logits_processor.builtin import process_dict_updates

    from vllm import SamplingParams

    tokenizer = AutoTokenizer.from_pretrained(options.model)
    scripts = [
        schedule(tokenizer, options.blocks, options.block_tokens, options.memento_tokens, seed)
        for seed in range(options.requests)
    ]

    class ForceScript(LogitsProcessor):
        """Row i emits its script's next token (script index in extra_args)."""

        def __init__(self, vllm_config, device, is_pin_memory):
            self.rows: dict[int, tuple[list[int], list[int]]] = {}

        def is_argmax_invariant(self) -> bool:
            return False

        def update_state(self, batch_update: BatchUpdate | None) -> None:
            process_dict_updates(
                self.rows,
                batch_update,
                lambda params, _, output_ids: (
                    scripts[params.extra_args["script"]],
                    output_ids,
                ),
            )

        def apply(self, logits: torch.Tensor) -> torch.Tensor:
            for index, (script, output_ids) in self.rows.items():
                step = min(len(output_ids), len(script) - 1)
                logits[index] = float("-inf")
                logits[index, script[step]] = 0.0
            return logits

    llm = offline_llm(
        options.model,
        config,
        dtype="float32",
        enforce_eager=True,
        block_size=options.kv_block_size,
        num_gpu_blocks_override=options.pool,
        max_model_len=min(MAX_POSITIONS, max(map(len, scripts)) + 256),  # + the prompt
        max_num_seqs=options.requests,
        gpu_memory_utilization=0.4,
        logits_processors=[ForceScript],
        **caching,
    )
    scheduler = llm.llm_engine.engine_core.engine_core.scheduler
    prompt = tokenizer.apply_chat_template(
        [
            {
                "role": "user",
                "content": "sum mod 10: " + " ".join(f"{c}:{i % 10}" for i, c in enumerate("abcdefghijklmn")),
            }
        ],
        add_generation_prompt=True,
        tokenize=False,
    )
    params = [
        SamplingParams(temperature=0, max_tokens=len(script), skip_special_tokens=False, extra_args={"script": i})
        for i, script in enumerate(scripts)
    ]
    llm.generate([prompt], [SamplingParams(max_tokens=4, extra_args={"script": 0})], use_tqdm=False)  # warm-up
    scheduler.memento_peak_blocks_in_use = 0
    scheduler.memento_preemptions = 0
    scheduler.memento_steps = scheduler.memento_running_sum = 0
    start = time.perf_counter()
    outputs = llm.generate([prompt] * options.requests, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    generated = [list(o.outputs[0].token_ids) for o in outputs]
    assert generated == scripts, "the forced workload must be produced exactly"
    llm.llm_engine.engine_core.shutdown()
    return {
        "seconds": seconds,
        "tokens": sum(map(len, generated)),
        "peak_blocks": scheduler.memento_peak_blocks_in_use,
        "preemptions": scheduler.memento_preemptions,
        "mean_running": scheduler.memento_running_sum / max(scheduler.memento_steps, 1),
        "released": getattr(scheduler, "memento_blocks_released", 0),
    }


def versions() -> str:
    """The versions the figures depend on, one line."""
    import transformers

    from memento.vllm.checks import installed_vllm_version

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += " with uncommitted changes"
    return (
        f"python {platform.python_version()}, torch {torch.__version__}, vllm {installed_vllm_version()}, "
        f"transformers {transformers.__version__}, memento {commit}, {os.cpu_count()} CPUs "
        f"({platform.machine()})"
    )


def spread(values: list[float], digits: int = 0) -> str:
    """Median [min-max] of repeated measurements."""
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--block-tokens", type=int, default=400)
    parser.add_argument("--memento-tokens", type=int, default=60)
    parser.add_argument("--pool", type=int, default=1100, help="KV blocks in the pool")
    parser.add_argument("--kv-block-size", type=int, default=32)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each runs every mode once, interleaved")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=[m for m in MODES if m != "memento-base"])
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="a memento src/ directory (e.g. `git archive <commit> src | tar -x -C DIR`): adds mode memento-base, "
        "the plugin as it was there, interleaved with the others",
    )
    parser.add_argument("--model", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=list(MODES), default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(MARKER + json.dumps(run(options.child, options)), flush=True)
        return
    if options.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {options.repeats}")
    if "memento-base" in options.modes and options.baseline_src is None:
        parser.error("mode memento-base needs --baseline-src")
    if options.baseline_src is not None:
        if not (options.baseline_src / "memento" / "vllm").is_dir():
            parser.error(f"--baseline-src {options.baseline_src}: no memento/vllm package there")
        if "memento-base" not in options.modes:
            options.modes.append("memento-base")
    command = shlex.join([sys.executable, *sys.argv])
    results: dict[str, list[dict]] = {mode: [] for mode in options.modes}
    child_options = list(sys.argv[1:])
    with tempfile.TemporaryDirectory() as directory:
        write_model(Path(directory), options.hidden_size, options.layers)
        for round_index in range(options.repeats):
            for mode in options.modes:  # interleaved: A B C A B C ...
                child = [sys.executable, str(Path(__file__).resolve()), *child_options, "--child", mode]
                environment = dict(os.environ)
                if mode == "memento-base":
                    environment["PYTHONPATH"] = str(options.baseline_src.resolve())
                process = subprocess.run(
                    [*child, "--model", directory], capture_output=True, text=True, env=environment
                )
                lines = [line for line in process.stdout.splitlines() if line.startswith(MARKER)]
                if process.returncode != 0 or not lines:
                    sys.exit(f"{mode} run (round {round_index + 1}) failed:\n{process.stderr[-4000:]}")
                results[mode].append(json.loads(lines[-1].removeprefix(MARKER)))
                print(
                    f"round {round_index + 1}/{options.repeats} {mode}: {results[mode][-1]['seconds']:.1f} s",
                    file=sys.stderr,
                )
    report(options, results, command)


def report(options: argparse.Namespace, results: dict[str, list[dict]], command: str) -> None:
    """The table (median [min-max] over repeats) and the ratios of memento to each plain setting."""
    per_request = next(iter(results.values()))[0]["tokens"] // options.requests
    print(
        f"{options.requests} requests x {per_request} generated tokens ({options.blocks} blocks of "
        f"{options.block_tokens} + mementos of {options.memento_tokens}), pool {options.pool} blocks of "
        f"{options.kv_block_size} tokens, Qwen3 {options.layers} x {options.hidden_size} fp32 on CPU, "
        f"{options.repeats} interleaved rounds; median [min-max]"
    )
    print(
        f"{'mode':12} {'req/s':>20} {'tok/s':>20} {'peak blocks':>18} {'preemptions':>14} {'running':>8} {'freed':>7}"
    )
    for mode, runs in results.items():
        print(
            f"{mode:12} {spread([options.requests / r['seconds'] for r in runs], 3):>20} "
            f"{spread([r['tokens'] / r['seconds'] for r in runs]):>20} "
            f"{spread([r['peak_blocks'] for r in runs]):>18} {spread([r['preemptions'] for r in runs]):>14} "
            f"{statistics.median(r['mean_running'] for r in runs):>8.1f} "
            f"{statistics.median(r['released'] for r in runs):>7.0f}"
        )
    if "memento" in results:
        memento = results["memento"]
        for baseline in (mode for mode in results if mode != "memento"):
            plain = results[baseline]
            speed = [p["seconds"] / m["seconds"] for p, m in zip(plain, memento, strict=True)]  # same round
            blocks = [p["peak_blocks"] / max(m["peak_blocks"], 1) for p, m in zip(plain, memento, strict=True)]
            print(
                f"memento vs {baseline}, per round: tok/s memento/{baseline} {spread(speed, 2)}, "
                f"peak KV blocks {baseline}/memento {spread(blocks, 2)}, "
                f"preemptions {statistics.median(p['preemptions'] for p in plain):.0f} -> "
                f"{statistics.median(m['preemptions'] for m in memento):.0f} (medians)"
            )
    print(f"command: {command}")
    print(f"versions: {versions()}")


if __name__ == "__main__":
    main()

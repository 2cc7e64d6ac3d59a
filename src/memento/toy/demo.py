"""`memento demo`: the embedded toy model solves held-out problems with and without eviction.

Three modes on the same problems, greedy, batched: memento eviction (keep_last_n_blocks=0), the
same model without eviction (-1), and restart_mode (mementos recomputed without their block: the
paper's dual-stream ablation). Peak KV comes from the real cache and is checked against
`memento.kv.simulate` on the same outputs.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memento.config import MementoConfig
from memento.toy import CHECKPOINT, HELD_OUT_SEED
from memento.toy.task import ToyTask, parse_answer

if TYPE_CHECKING:
    from memento.inference import GenerationResult, MementoGenerator
    from memento.kv import KVGeometry

MODES: dict[str, dict[str, Any]] = {
    "memento": {"keep_last_n_blocks": 0},
    "no_eviction": {"keep_last_n_blocks": -1},
    "restart": {"keep_last_n_blocks": 0, "restart_mode": True},
}


@dataclass
class ModeReport:
    """One mode over all problems; per-problem lists keep the raw figures."""

    accuracy: float
    peak_kv_tokens_mean: float
    peak_kv_tokens_max: int
    peak_kv_bytes_mean: float
    peak_kv_bytes_max: int
    auc_gb_ktok_mean: float
    tokens_per_second: float
    blocks_per_problem: float
    memento_to_block_tokens: float | None
    generated_tokens_mean: float
    matches_simulator: bool
    kv_traces: list[list[int]] = field(default_factory=list, repr=False)
    texts: list[str] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("kv_traces", "texts")}


def _measure(
    results: list[GenerationResult],
    answers: list[int],
    seconds: float,
    generator: MementoGenerator,
    geometry: KVGeometry,
) -> ModeReport:
    from memento.attention import analyze
    from memento.kv import memento_to_block_ratio, simulate

    config, special_ids = generator.config, generator.special_ids
    per_token = geometry.bytes_per_token
    correct, peaks, aucs, blocks, matches = 0, [], [], [], True
    block_tokens = memento_tokens = 0
    for result, answer in zip(results, answers, strict=True):
        correct += parse_answer(result.text) == answer
        peaks.append(result.kv_tokens_peak)
        aucs.append(sum(result.kv_trace[1:]) * per_token / 1e12)
        cached = result.prompt_ids + result.token_ids[:-1]  # the last sampled token never entered the cache
        report = simulate(cached, special_ids, geometry, config, prompt_length=len(result.prompt_ids))
        matches &= report.peak_tokens == result.kv_tokens_peak and report.occupancy[-1] == result.kv_trace[-1]
        layout = analyze(result.prompt_ids + result.token_ids, special_ids, config)
        done = [b for b in layout.blocks if b.summary_end is not None and b.start >= len(result.prompt_ids)]
        blocks.append(len(done))
        block_tokens += sum(b.end - b.start - 1 for b in done)
        memento_tokens += sum(b.summary_end - b.summary_start - 1 for b in done)
    generated = sum(len(r.token_ids) for r in results)
    return ModeReport(
        accuracy=correct / len(results),
        peak_kv_tokens_mean=statistics.mean(peaks),
        peak_kv_tokens_max=max(peaks),
        peak_kv_bytes_mean=statistics.mean(peaks) * per_token,
        peak_kv_bytes_max=max(peaks) * per_token,
        auc_gb_ktok_mean=statistics.mean(aucs),
        tokens_per_second=generated / seconds,
        blocks_per_problem=statistics.mean(blocks),
        memento_to_block_tokens=memento_to_block_ratio(memento_tokens, block_tokens),
        generated_tokens_mean=generated / len(results),
        matches_simulator=matches,
        kv_traces=[r.kv_trace for r in results],
        texts=[r.text for r in results],
    )


@dataclass(frozen=True)
class DemoOptions:
    """How many held-out problems the demo solves, and how."""

    problems: int = field(default=300, metadata={"help": "held-out problems, solved in every mode"})
    batch_size: int = field(default=100, metadata={"help": "problems decoded together"})
    seed: int = field(default=HELD_OUT_SEED, metadata={"help": "seed of the held-out problems"})
    max_new_tokens: int = field(default=600, metadata={"help": "new tokens per problem at most"})

    def __post_init__(self) -> None:
        for name in ("problems", "batch_size", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def run_demo(
    model_dir: str | Path | None = None,
    options: DemoOptions | None = None,
    *,
    task: ToyTask | None = None,
    save_traces: str | Path | None = None,
) -> dict[str, Any]:
    """Solve `options.problems` held-out problems in every mode; returns the JSON-ready report.

    `save_traces`: a directory that receives each mode's outputs as memento text (one JSONL per
    mode, ``{"text": prompt + output}``), for `memento kv --model-config` on the same outputs.
    """
    model_dir = Path(model_dir) if model_dir is not None else CHECKPOINT
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"no model in {model_dir}; train one with `memento toy train --install`")
    options = options or DemoOptions()
    problems, batch_size = options.problems, options.batch_size
    import torch  # the model stack loads only when the demo runs (`memento demo --help` stays fast)

    from memento.inference import MementoGenerator
    from memento.inference.loading import load_model_and_tokenizer
    from memento.kv import KVGeometry

    torch.manual_seed(0)
    model, tokenizer = load_model_and_tokenizer(model_dir, dtype="float32", device="cpu")
    geometry = KVGeometry.from_config(model.config, bytes_per_element=model.dtype.itemsize)
    task = task or ToyTask()
    examples = task.examples(problems, options.seed)
    prompts = [trace.prompt for _, trace in examples]
    answers = [task.answer(numbers) for numbers, _ in examples]
    report: dict[str, Any] = {"problems": problems, "model": str(model_dir), "task": task.__dict__, "modes": {}}
    details: dict[str, ModeReport] = {}
    for name, mode in MODES.items():
        generator = MementoGenerator(model, tokenizer, MementoConfig(mask_delimiters=False, **mode))
        start, results = time.perf_counter(), []
        for offset in range(0, problems, batch_size):
            results += generator.generate(prompts[offset : offset + batch_size], max_new_tokens=options.max_new_tokens)
        details[name] = _measure(results, answers, time.perf_counter() - start, generator, geometry)
        if save_traces is not None:
            directory = Path(save_traces)
            directory.mkdir(parents=True, exist_ok=True)
            with (directory / f"{name}.jsonl").open("w") as handle:
                for result in results:
                    text = tokenizer.decode(result.prompt_ids + result.token_ids[:-1], skip_special_tokens=False)
                    handle.write(json.dumps({"text": text}) + "\n")
        report["modes"][name] = details[name].to_dict()
    memento, plain = details["memento"], details["no_eviction"]
    report["peak_kv_ratio"] = memento.peak_kv_tokens_mean / plain.peak_kv_tokens_mean
    report["accuracy_gap_pp"] = 100 * (plain.accuracy - memento.accuracy)
    report["kv_bytes_per_token"] = geometry.bytes_per_token
    report["example"] = {
        "prompt": prompts[0],
        "answer": answers[0],
        "memento_text": memento.texts[0],
        "kv_traces": {name: d.kv_traces[0] for name, d in details.items()},
    }
    return report


def print_demo(report: dict[str, Any]) -> None:
    """The table, then one full trace with its mementos."""
    from rich.console import Console
    from rich.table import Table

    from memento.tables import print_table

    console = Console(soft_wrap=True)  # prose lines are never cut or wrapped by rich; tables fit (print_table)
    table = Table(title=f"memento demo: {report['problems']} held-out problems, embedded toy model")
    columns = [
        "mode",
        "accuracy",
        "peak KV tokens mean/max",
        "peak KV mean",
        "KV AUC GB*ktok",
        "tok/s",
        "blocks/problem",
        "memento/block tok",
        "= memento kv",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column == "mode" else "right", no_wrap=True)
    for name, m in report["modes"].items():
        ratio = m["memento_to_block_tokens"]
        compression = "-" if ratio is None else f"{ratio:.2f}"
        table.add_row(
            name,
            f"{m['accuracy']:.1%}",
            f"{m['peak_kv_tokens_mean']:.0f} / {m['peak_kv_tokens_max']}",
            f"{m['peak_kv_bytes_mean'] / 1024:.0f} KiB",
            f"{m['auc_gb_ktok_mean']:.2e}",
            f"{m['tokens_per_second']:.0f}",
            f"{m['blocks_per_problem']:.2f}",
            compression,
            "yes" if m["matches_simulator"] else "NO",
        )
    print_table(table, console)
    console.print(
        f"peak KV with eviction = {report['peak_kv_ratio']:.2f}x without; accuracy gap "
        f"{report['accuracy_gap_pp']:+.1f} pp; restart_mode is the paper's dual-stream ablation "
        "(mementos recomputed without their block)"
    )
    example = report["example"]
    console.print(f"\n[bold]Problem:[/bold] {example['prompt']}   (answer {example['answer']})")
    console.print("[bold]Memento trace[/bold] (blocks are evicted after each memento):")
    console.print(example["memento_text"], markup=False, highlight=False)


def plot_demo(report: dict[str, Any], path: str | Path) -> None:
    """KV cache over generated tokens for one problem, all three modes: the sawtooth."""
    from memento.figures import figure_to

    with figure_to(path, figsize=(9, 4)) as (_, axis):
        for (name, trace), style in zip(report["example"]["kv_traces"].items(), ("-", "--", ":"), strict=True):
            axis.plot(range(len(trace)), trace, style, label=f"{name} (peak {max(trace)} tokens)", linewidth=1.8)
        axis.set_xlabel("generated tokens")
        axis.set_ylabel("tokens in the KV cache")
        axis.set_title(f"KV cache while solving: {report['example']['prompt']}", fontsize=9)
        axis.grid(alpha=0.3)
        axis.legend()

"""Peak context: prompted mode vs one plain chain-of-thought call, same endpoint, same problems.

For each problem both run back to back (their order alternating from problem to problem) and
the server's own `usage` is read: prompted mode's peak is the largest prompt + completion of any
of its calls (prompt + mementos + the open block), the plain call's is its prompt + completion.
Prints one row per problem, then the plain/prompted ratio of peaks (mean, standard deviation,
min, max) and of tokens billed, with the exact command and versions. Token counts under greedy
decoding are deterministic, so one pass per problem is the measurement.

    python bench/prompted_context.py --base-url http://127.0.0.1:8011/v1 --model smollm2 \\
        --file problems.jsonl --block-tokens 96 --memento-tokens 48 --max-rounds 4 --plain-max-tokens 512
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
from importlib.metadata import version
from pathlib import Path

from memento.prompted import PromptedConfig, PromptedSolver, read_problem_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--file", type=Path, required=True, help="JSONL of {id, problem}")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--block-tokens", type=int, default=256)
    parser.add_argument("--memento-tokens", type=int, default=64)
    parser.add_argument("--max-rounds", type=int, default=8)
    parser.add_argument("--answer-tokens", type=int, default=64)
    parser.add_argument("--plain-max-tokens", type=int, default=None, help="default: max_rounds x block_tokens")
    args = parser.parse_args()

    config = PromptedConfig(
        base_url=args.base_url,
        model=args.model,
        block_tokens=args.block_tokens,
        memento_tokens=args.memento_tokens,
        max_rounds=args.max_rounds,
        answer_tokens=args.answer_tokens,
        plain_max_tokens=args.plain_max_tokens,
    )
    solver = PromptedSolver(config)
    problems = read_problem_file(args.file)[: args.limit]
    print(f"$ python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"python {platform.python_version()}, openai {version('openai')}, model {args.model} at {args.base_url}")
    header = f"{'id':>12} {'rounds':>6} {'fallbacks':>9} {'peak prompted':>13} {'peak plain':>10} {'ratio':>6}"
    print(header + f" {'billed prompted':>15} {'billed plain':>12} {'plain end':>9}")
    peak_ratios, billed_ratios = [], []
    for index, problem in enumerate(problems):
        if index % 2 == 0:
            result, plain = solver.solve(problem.text), solver.plain_call(problem.text)
        else:
            plain, result = solver.plain_call(problem.text), solver.solve(problem.text)
        peak, plain_peak = result.bill.peak_context_tokens, plain.bill.peak_context_tokens
        billed = result.bill.prompt_tokens + result.bill.completion_tokens
        plain_billed = plain.bill.prompt_tokens + plain.bill.completion_tokens
        peak_ratios.append(plain_peak / peak)
        billed_ratios.append(plain_billed / billed)
        print(
            f"{problem.id:>12} {result.rounds:>6} {len(result.fallbacks):>9} {peak:>13} {plain_peak:>10} "
            f"{plain_peak / peak:>6.2f} {billed:>15} {plain_billed:>12} {plain.finish_reason:>9}"
        )

    def spread(values: list[float]) -> str:
        deviation = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.2f} ± {deviation:.2f} (min {min(values):.2f}, max {max(values):.2f})"

    print(f"peak context plain/prompted over {len(problems)} problems: {spread(peak_ratios)}")
    print(f"tokens billed plain/prompted: {spread(billed_ratios)}")


if __name__ == "__main__":
    main()

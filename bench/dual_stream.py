"""The dual-stream experiment at toy scale: does a fact only block 1 holds reach the answer through the memento's KV?

The key task (`memento.toy.key_task`): block 1 ends by noting a key digit that neither the prompt
nor any memento text states; later blocks and the answer restate it, and the answer is (running sum
+ key) mod 10. With eviction, the only route from the key to the answer is KV computed while block 1
was visible (its memento, its ``<|block_end|>``, the newline between them). Restart mode recomputes
the memento without the block and drops the delimiters (the newline's KV stays).

Two measurements on held-out problems:

* accuracy: greedy generation with the key forced (the assistant turn prefilled through block 1's
  reference scratch work and ``z:K``), with eviction (memento), in restart mode and without
  eviction; pass@1 +- standard error over problems (`memento.eval.grading.metrics.pass_at_1`), how often
  the answer restates the forced key, and how often it restates the note the model wrote at the
  end of its own last block (evicted before the answer: with eviction only that block's KV carries
  it), against the same agreement with the next problem's last note (its chance level, since the
  model's notes are not uniform);
* probe: hidden states of the reference trace (teacher-forced) mean-pooled over block 1's memento,
  once under memento attention (memento computed with block 1 visible) and once under restart
  mode's mask (memento recomputed without it); a multinomial logistic regression fitted on the
  first `--probe-train` share of the problems reads the key on the rest (accuracy +- s.e.; chance 10%).

Train the model first (from scratch: stage 1 of full attention teaches the copy, stage 2 the memento
mask with 30% full-attention examples; 3,000 steps, about 20 minutes on one core), then run the bench
(seconds):

    OMP_NUM_THREADS=1 memento toy train --task key --output runs/dual_key --examples 4000 --batch-size 16 \
        --epochs 6 --memento-epochs 6 --full-attention-fraction 0.3
    OMP_NUM_THREADS=2 PYTHONPATH=src python bench/dual_stream.py --model runs/dual_key

Measured once (2-core CPU; python 3.11.7, torch 2.13.0, transformers 5.19.0; the model above; 300
held-out problems; probe 1000 problems, fitted on 700, scored on 300; one thread):

    mode                      pass@1        key recalled   last note carried   (other problem's)
    memento            9.0% +-  1.7%       9.0% +-  1.7%      95.7% +-  1.2%      95.7% +-  1.2%
    restart            8.7% +-  1.6%       9.0% +-  1.7%      94.0% +-  1.4%      94.0% +-  1.4%
    no_eviction      100.0% +-  0.0%     100.0% +-  0.0%     100.0% +-  0.0%      10.4% +-  1.8%

    hidden state             memento           restart
    embeddings        10.0% +-  1.7%    10.0% +-  1.7%
    layer 1           30.3% +-  2.7%     8.7% +-  1.6%
    layer 2           37.0% +-  2.8%    11.3% +-  1.8%
    layer 3           31.7% +-  2.7%     9.7% +-  1.7%
    layer 4           32.3% +-  2.7%    10.0% +-  1.7%

    teacher-forced probability of the right key at each note
    mode                   block 1           block 2            answer
    memento         0.099 +- 0.000    0.099 +- 0.000    0.099 +- 0.000
    restart         0.099 +- 0.000    0.099 +- 0.000    0.099 +- 0.000
    no_eviction     0.099 +- 0.000    1.000 +- 0.000    1.000 +- 0.000

With block 1 visible the model copies the key every time (100%). Block 1's memento, computed with the
block visible, holds the key (the probe reads it at 30-37% against 9-11% in restart mode), but the model
never learned to read it from there: with eviction its notes and answers are at chance, as in restart
mode (it writes the same note whatever the key, so "last note carried" equals its chance column).
"""

from __future__ import annotations

import argparse
import time
from itertools import pairwise
from pathlib import Path

import torch

from memento.eval.grading.metrics import pass_at_1
from memento.eval.run.modes import builtin_mode
from memento.inference.loading import load_model_and_tokenizer
from memento.toy import HELD_OUT_SEED
from memento.toy.dual_stream import key_probabilities, probe_accuracy, reference_states, solve
from memento.toy.key_task import KEYS, KeyTask
from provenance import describe
from results import add_results_flag, table, write_results

ACCURACY_MODES = ("memento", "restart", "no_eviction")
PROBE_MODES = ("memento", "restart")
PROBE_SEED = HELD_OUT_SEED + 1
"""Seed of the probe's problems (the accuracy problems use `HELD_OUT_SEED`)."""


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("runs/dual_key"), help="key-task checkpoint")
    parser.add_argument("--problems", type=int, default=300, help="held-out problems solved in every mode")
    parser.add_argument("--probe-problems", type=int, default=1000, help="problems whose states the probe sees")
    parser.add_argument("--probe-train", type=float, default=0.7, help="share of probe problems it is fitted on")
    parser.add_argument("--batch-size", type=int, default=100, help="problems decoded together")
    parser.add_argument("--max-new-tokens", type=int, default=500, help="new tokens per problem at most")
    add_results_flag(parser, "dual_stream")
    args = parser.parse_args()
    if not (args.model / "config.json").is_file():
        parser.error(f"--model {args.model}: no config.json; train it first (see this script's docstring)")
    if min(args.problems - 1, args.probe_problems, args.batch_size, args.max_new_tokens) < 1:
        parser.error("--problems must be >= 2; --probe-problems, --batch-size and --max-new-tokens >= 1")
    if not 0 < args.probe_train < 1 or not 2 <= int(args.probe_problems * args.probe_train) < args.probe_problems:
        parser.error("--probe-train must leave at least 2 problems on each side of the split")
    return args


def _percent(mean: float, stderr: float) -> str:
    return f"{100 * mean:5.1f}% +- {100 * stderr:4.1f}%"


def main() -> None:
    args = _arguments()
    torch.manual_seed(0)
    model, tokenizer = load_model_and_tokenizer(args.model, dtype="float32", device="cpu")
    task = KeyTask()
    print(describe("cpu"))
    print(f"model: {args.model}; task: {task}; chance: {1 / KEYS:.0%}\n")

    problems = [p for p, _ in task.examples(args.problems, HELD_OUT_SEED)]
    print(f"accuracy: {args.problems} held-out problems (seed {HELD_OUT_SEED}), greedy, key forced")
    columns = ("pass@1", "key recalled", "last note carried", "  (other problem's)")
    print(f"{'mode':<12}" + "".join(f"{c:>20}" for c in columns) + f"{'seconds':>9}")
    accuracy_rows = []
    for name in ACCURACY_MODES:
        start = time.perf_counter()
        config = builtin_mode(name, mask_delimiters=False).config
        assert config is not None
        solved = solve(
            model, tokenizer, task, problems, config, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens
        )
        accuracy = pass_at_1([[s.correct] for s in solved])
        recalled = pass_at_1([[s.key_recalled] for s in solved])
        carried = pass_at_1([[s.last_note_carried] for s in solved])
        # chance for that column: the answer's key against the last note of the next problem
        shifted = [[s.answer_key is not None and s.answer_key == t.last_note] for s, t in pairwise(solved)]
        seconds = time.perf_counter() - start
        cells = [_percent(*accuracy), _percent(*recalled), _percent(*carried), _percent(*pass_at_1(shifted))]
        print(f"{name:<12}" + "".join(f"{c:>20}" for c in cells) + f"{seconds:9.0f}", flush=True)
        accuracy_rows.append([name, *(cell.strip() for cell in cells)])

    print("\nteacher-forced probability of the right key at each note (reference traces, the same problems)")
    rows = {
        name: key_probabilities(model, tokenizer, task, problems, builtin_mode(name, False).config)
        for name in ACCURACY_MODES
    }
    notes = next(iter(rows.values())).shape[1]
    labels = [f"block {i + 1}" for i in range(notes - 1)] + ["answer"]
    print(f"{'mode':<12}" + "".join(f"{label:>18}" for label in labels))
    probability_rows = []
    for name, values in rows.items():
        cells = [f"{values[:, i].mean():.3f} +- {values[:, i].std() / len(problems) ** 0.5:.3f}" for i in range(notes)]
        print(f"{name:<12}" + "".join(f"{cell:>18}" for cell in cells), flush=True)
        probability_rows.append([name, *cells])

    probe_problems = [p for p, _ in task.examples(args.probe_problems, PROBE_SEED)]
    split = int(args.probe_problems * args.probe_train)
    keys = torch.tensor([task.key(p) for p in probe_problems])
    features = {
        name: reference_states(model, tokenizer, task, probe_problems, builtin_mode(name, False).config)
        for name in PROBE_MODES
    }
    layers = next(iter(features.values())).shape[1]
    print(
        f"\nprobe: key digit from hidden states mean-pooled over block 1's memento; {args.probe_problems} problems "
        f"(seed {PROBE_SEED}), fitted on {split}, scored on {args.probe_problems - split}; chance {1 / KEYS:.0%}"
    )
    print(f"{'hidden state':<14}" + "".join(f"{name:>18}" for name in PROBE_MODES))
    probe_rows = []
    for layer in range(layers):
        cells = []
        for name in PROBE_MODES:
            x = features[name][:, layer]
            correct = probe_accuracy(x[:split], keys[:split], x[split:], keys[split:])
            cells.append(_percent(*pass_at_1([[c] for c in correct])))
        label = "embeddings" if layer == 0 else f"layer {layer}"
        print(f"{label:<14}" + "".join(f"{cell:>18}" for cell in cells), flush=True)
        probe_rows.append([label, *(cell.strip() for cell in cells)])
    write_results(
        args.write_results,
        "dual_stream",
        provenance=[*describe("cpu").splitlines()[1:3], f"model: {args.model}"],
        tables=[
            table(
                f"{args.problems} held-out problems, greedy, key forced "
                "(the last column: the chance level of the one before it)",
                ["mode", "pass@1", "key recalled", "last note carried", "(chance)"],
                accuracy_rows,
            ),
            table(
                f"linear probe for block 1's key on block 1's memento (fitted on {split}, scored on "
                f"{args.probe_problems - split}; chance {1 / KEYS:.0%})",
                ["hidden state", *PROBE_MODES],
                probe_rows,
            ),
            table("teacher-forced probability of the right key at each note", ["mode", *labels], probability_rows),
        ],
    )


if __name__ == "__main__":
    main()

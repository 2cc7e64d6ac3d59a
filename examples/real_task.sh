#!/usr/bin/env bash
# The paper's claim on a real model, on a task it can learn: the ledger task (memento.tasks.ledger:
# quantity tracking over N transfers, one block per transfer) -> `memento data build --offline` ->
# `memento train` of SmolLM2-135M-Instruct from its .gguf (both stages) and of the same model on the same
# traces as plain chain of thought (the baseline) -> `memento eval` per difficulty on held-out problems
# (memento with eviction, without, restart, plain CoT) -> vLLM backend and `memento verify` checks ->
# `memento kv` -> docs/figures/real_task.json, plots and a table.
#
#   examples/real_task.sh            (or: make real-task-demo)
#
# Every size is an environment variable (a slow test runs a shrunken copy). Outputs go to $OUT; each
# stage's wall time is appended to $OUT/times.tsv; FROM=data|train|eval|checks|report starts at that
# stage, reusing the earlier stages' outputs in $OUT (FROM=eval resumes evaluations stopped part-way).
set -euo pipefail

SIZES=(LEVELS TRAIN_LEVELS TRAIN_PER_LEVEL EPOCHS MEMENTO_EPOCHS PLAIN_EPOCHS LEARNING_RATE BATCH_SIZE EVAL_MIDDLE EVAL_OTHER
    EVAL_BATCH EVAL_DTYPE VLLM_PROBLEMS BUDGET TEMPERATURE MAX_RATIO MAX_NEW_TOKENS CHECKS SEED)
OVERRIDES=""  # the sizes given in the environment: the command the figures file shows
for name in "${SIZES[@]}"; do [ -n "${!name+x}" ] && OVERRIDES+="$name=${!name} "; done
OUT=${OUT:-runs/real-task}
BIN=${BIN:-.venv/bin}
LEVELS=${LEVELS:-4,8,12}              # difficulties (transfers a problem), trained and evaluated; the middle one heads
TRAIN_LEVELS=${TRAIN_LEVELS:-$LEVELS}  # difficulties of the training problems
TRAIN_PER_LEVEL=${TRAIN_PER_LEVEL:-96}  # training problems per difficulty (training seeds)
EPOCHS=${EPOCHS:-1}                   # memento stage 1 (full causal attention)
MEMENTO_EPOCHS=${MEMENTO_EPOCHS:-1}   # memento stage 2 (memento attention)
PLAIN_EPOCHS=${PLAIN_EPOCHS:-$((EPOCHS + MEMENTO_EPOCHS))}  # the baseline: the same passes over the same problems
LEARNING_RATE=${LEARNING_RATE:-3e-4}
BATCH_SIZE=${BATCH_SIZE:-4}
EVAL_MIDDLE=${EVAL_MIDDLE:-300}       # held-out problems at the middle difficulty
EVAL_OTHER=${EVAL_OTHER:-64}          # at the other difficulties
EVAL_BATCH=${EVAL_BATCH:-64}
VLLM_PROBLEMS=${VLLM_PROBLEMS:-32}    # the hf/vllm comparison: the first problems of the middle difficulty
BUDGET=${BUDGET:-512}                 # KV tokens (prompt included) of the fixed-budget comparison
TEMPERATURE=${TEMPERATURE:-0}         # greedy: the task has one right continuation; s.e. is over problems
MAX_RATIO=${MAX_RATIO:-0.5}           # offline mementos up to this share of their block (a state is ~30% of a step)
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-}     # per response; empty: 110 a transfer (~60 reasoning + ~25 memento) + 100
CHECKS=${CHECKS:-1}                   # 0: skip the vLLM comparison, memento verify and memento kv
SEED=${SEED:-0}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
BF16=${BF16:-$("$BIN/python" -c "from memento.training.trainer import native_bf16; print('yes' if native_bf16() else 'no')" | tail -n 1)}
EVAL_DTYPE=${EVAL_DTYPE:-$([ "$BF16" = yes ] && echo bfloat16 || echo float32)}  # the large evaluations (1.7x faster in bf16 here)
SYSTEM_PROMPT="You are a helpful AI assistant named SmolLM, trained by Hugging Face"  # SmolLM2's template adds it

FROM=${FROM:-inputs}
ORDER=(inputs data train eval checks report)
source "$(dirname "${BASH_SOURCE[0]}")/stages.sh"

IFS=, read -r -a levels <<< "$LEVELS"
MIDDLE=${levels[$(((${#levels[@]} - 1) / 2))]}
BUILD=(--offline --tokenizer "$BASE" --min-block-tokens 30 --min-blocks 1 --max-blocks 32 --workers 1)
TRAIN=(--model "$GGUF" --learning-rate "$LEARNING_RATE" --batch-size "$BATCH_SIZE" --group-by-length
    --max-length 2048 --dtype fp32 --bf16 "$BF16" --system-prompt "$SYSTEM_PROMPT" --logging-steps 5
    --save-total-limit 1 --seed "$SEED")
max_new_tokens() { echo "${MAX_NEW_TOKENS:-$((110 * $1 + 100))}"; }

if runs inputs; then
    "$BIN/python" -c "import json, sys; print(json.dumps(dict(command=sys.argv[1], **dict(a.split('=', 1) for a in sys.argv[2:]))))" \
        "${OVERRIDES}make real-task-demo" $(for name in "${SIZES[@]}"; do echo "$name=${!name}"; done) > "$OUT/run.json"
    stage inputs "$BIN/python" examples/real_task_inputs.py --levels "$TRAIN_LEVELS" --per-level "$TRAIN_PER_LEVEL" \
        --output "$OUT/cot.jsonl" --plain "$OUT/plain.jsonl"
fi
if runs data; then
    rm -rf "$OUT/data" "$OUT/data-default"
    stage data-build "$BIN/memento" data build --input "$OUT/cot.jsonl" --output-dir "$OUT/data" "${BUILD[@]}" \
        --offline-max-ratio "$MAX_RATIO"
    "$BIN/memento" data stats "$OUT/data"
    # the builder's defaults (mementos up to 0.25 of a block), only to count the mementos that lose the state
    "$BIN/memento" data build --input "$OUT/cot.jsonl" --output-dir "$OUT/data-default" "${BUILD[@]}" > /dev/null
    "$BIN/python" examples/real_task_report.py state "$OUT" | tee "$OUT/state.json"
fi
if runs train; then
    rm -rf "$OUT/model" "$OUT/plain-model" "$OUT"/eval-* "$OUT"/check-*  # evaluations of the models replaced
    stage train-memento "$BIN/memento" train "${TRAIN[@]}" --data "$OUT/data/records.jsonl" --output "$OUT/model" \
        --stage both --epochs "$EPOCHS" --memento-epochs "$MEMENTO_EPOCHS"
    # the baseline: the same problems' reasoning as plain chain of thought, no memento tokens
    stage train-plain "$BIN/memento" train "${TRAIN[@]}" --data "$OUT/plain.jsonl" --output "$OUT/plain-model" \
        --stage full --epochs "$PLAIN_EPOCHS"
fi
if runs eval; then
    order=("$MIDDLE")  # the headline difficulty first
    for level in "${levels[@]}"; do [ "$level" = "$MIDDLE" ] || order+=("$level"); done
    for level in "${order[@]}"; do
        limit=$EVAL_OTHER
        [ "$level" = "$MIDDLE" ] && limit=$EVAL_MIDDLE
        # an evaluation stopped part-way resumes (memento eval refuses one made with other settings)
        stage "eval-$level" "$BIN/memento" eval --model "$OUT/model" --baseline-model "$OUT/plain-model" \
            --benchmark "ledger-$level" --limit "$limit" --modes memento,no_eviction,restart --samples 1 \
            --temperature "$TEMPERATURE" --seed "$SEED" --max-new-tokens "$(max_new_tokens "$level")" \
            --batch-size "$EVAL_BATCH" --device cpu --dtype "$EVAL_DTYPE" --offline --no-progress \
            --output "$OUT/eval-$level" > "$OUT/eval-$level.txt"
        cat "$OUT/eval-$level.txt"
    done
fi
if runs checks && [ "$CHECKS" = 1 ]; then
    # the same first problems on the vLLM plugin and on transformers, timed side by side
    for backend in hf vllm; do
        rm -rf "$OUT/check-$backend"
        stage "check-$backend" "$BIN/memento" eval --backend "$backend" --model "$OUT/model" \
            --benchmark "ledger-$MIDDLE" --limit "$VLLM_PROBLEMS" --modes memento,no_eviction --samples 1 \
            --temperature "$TEMPERATURE" --seed "$SEED" --max-new-tokens "$(max_new_tokens "$MIDDLE")" \
            --batch-size "$EVAL_BATCH" --dtype float32 --offline --no-progress --output "$OUT/check-$backend" \
            > "$OUT/check-$backend.txt" || echo "check-$backend failed" >&2
    done
    stage verify "$BIN/memento" verify --model "$OUT/model" --weights checkpoint --dtype float32 --json \
        > "$OUT/verify.txt" || echo "verify failed" >&2
    "$BIN/python" examples/real_model_report.py traces "$OUT/eval-$MIDDLE" "$OUT/kv-$MIDDLE.jsonl"
    if [ -s "$OUT/kv-$MIDDLE.jsonl" ]; then
        stage kv "$BIN/memento" kv "$OUT/kv-$MIDDLE.jsonl" --model-config "$OUT/model" --tokenizer "$OUT/model" \
            --json > "$OUT/kv-$MIDDLE.json"
    fi
fi
if runs report; then
    "$BIN/python" examples/real_task_report.py figures "$OUT" --budget "$BUDGET" --middle "$MIDDLE" \
        ${FIGURES:+--output "$FIGURES"} | tee "$OUT/table.md"
fi

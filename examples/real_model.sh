#!/usr/bin/env bash
# A real model through the loop, on CPU: MATH + GSM8K train solutions -> `memento data build --offline`
# -> `memento train` of SmolLM2-135M-Instruct from its .gguf (both stages) -> `memento eval` on MATH-500
# and GSM8K subsets (base model, memento model with eviction, the same model without eviction, same
# problems) -> `memento kv` on the memento model's own outputs -> the README table.
#
#   examples/real_model.sh            (or: make real-demo; about an hour on 2 CPU cores: training ~40 min)
#
# Every size is an environment variable (the slow test runs a shrunken copy). Outputs go to $OUT; each
# stage's wall time is appended to $OUT/times.tsv, the table is printed and written to $OUT/table.md.
# FROM=data|train|eval starts at that stage, reusing the outputs of the earlier ones in $OUT.
set -euo pipefail

OUT=${OUT:-runs/real-model}
BIN=${BIN:-.venv/bin}
MATH_TRAIN=${MATH_TRAIN:-400}       # MATH train solutions
GSM8K_TRAIN=${GSM8K_TRAIN:-400}     # GSM8K train solutions
EPOCHS=${EPOCHS:-1}                 # stage 1 (full causal attention)
MEMENTO_EPOCHS=${MEMENTO_EPOCHS:-2} # stage 2 (memento attention)
LEARNING_RATE=${LEARNING_RATE:-3e-4}  # few steps: a higher rate than the paper's 8e-5
BATCH_SIZE=${BATCH_SIZE:-8}
GSM8K_EVAL=${GSM8K_EVAL:-40}        # first N problems of GSM8K test
MATH_EVAL=${MATH_EVAL:-20}          # first N problems of MATH-500
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-384}
TEMPERATURE=${TEMPERATURE:-0.6}      # the paper's sampling (top-p 0.95, top-k 20); 0 = greedy
SEED=${SEED:-0}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# bf16 autocast over fp32 weights where the CPU has native bf16 (AVX512-BF16/AMX): 2.2x faster steps there
BF16=${BF16:-$("$BIN/python" -c "from memento.training.trainer import native_bf16; print('yes' if native_bf16() else 'no')" | tail -n 1)}
# SmolLM2's chat template adds this system turn when a conversation has none: train with it too
SYSTEM_PROMPT="You are a helpful AI assistant named SmolLM, trained by Hugging Face"

FROM=${FROM:-inputs}
ORDER=(inputs data train eval)
source "$(dirname "${BASH_SOURCE[0]}")/stages.sh"

if runs inputs; then
    stage inputs "$BIN/python" examples/real_model_inputs.py --math "$MATH_TRAIN" --gsm8k "$GSM8K_TRAIN" \
        --chars 250-700 --output "$OUT/cot.jsonl"
fi
# Solutions of 250-700 characters are ~60-200 tokens: blocks of >= 20 tokens, 2-5 per solution (the
# paper's 10-20 blocks of ~1,150 tokens fit 10K-token traces, not these).
if runs data; then
    rm -rf "$OUT/data"
    stage data-build "$BIN/memento" data build --offline --input "$OUT/cot.jsonl" --output-dir "$OUT/data" \
        --tokenizer "$BASE" --min-block-tokens 20 --min-blocks 2 --max-blocks 5 --workers 1
    "$BIN/memento" data stats "$OUT/data"
fi

if runs train; then
    rm -rf "$OUT/model"
    stage train "$BIN/memento" train --model "$GGUF" --data "$OUT/data/records.jsonl" --output "$OUT/model" \
        --stage both --epochs "$EPOCHS" --memento-epochs "$MEMENTO_EPOCHS" --learning-rate "$LEARNING_RATE" \
        --batch-size "$BATCH_SIZE" --group-by-length --max-length 1024 --dtype fp32 --bf16 "$BF16" \
        --system-prompt "$SYSTEM_PROMPT" --logging-steps 5 --save-total-limit 1
fi

for benchmark in gsm8k math500; do
    limit=$GSM8K_EVAL
    [ "$benchmark" = math500 ] && limit=$MATH_EVAL
    rm -rf "$OUT/eval-$benchmark"
    # one sample per problem with the paper's sampling (seeded per sample): the three modes answer the same
    # problems; the base model runs from its .gguf (the cached conversion)
    stage "eval-$benchmark" "$BIN/memento" eval --model "$OUT/model" --baseline-model "$GGUF" \
        --benchmark "$benchmark" --limit "$limit" --modes memento,no_eviction --samples 1 \
        --temperature "$TEMPERATURE" --seed "$SEED" \
        --max-new-tokens "$MAX_NEW_TOKENS" --batch-size "$limit" --offline --device cpu --dtype float32 \
        --no-progress --output "$OUT/eval-$benchmark" > "$OUT/eval-$benchmark.txt"
    cat "$OUT/eval-$benchmark.txt"
    # the memento model's own outputs as traces, replayed by `memento kv` (evicting and not)
    "$BIN/python" examples/real_model_report.py traces "$OUT/eval-$benchmark" "$OUT/kv-$benchmark.jsonl"
    if [ -s "$OUT/kv-$benchmark.jsonl" ]; then
        stage "kv-$benchmark" "$BIN/memento" kv "$OUT/kv-$benchmark.jsonl" --model-config "$OUT/model" \
            --tokenizer "$OUT/model" --json > "$OUT/kv-$benchmark.json"
    fi
done

"$BIN/python" examples/real_model_report.py table "$OUT" | tee "$OUT/table.md"

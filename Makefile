# Two commands do all the set-up: `make demo` and `make test`.
# GPU users: make demo TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu128"
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_SPEC ?= torch==2.13.0
PACKAGES := packages/dewey-core packages/langchain-dewey packages/llamaindex-dewey packages/haystack-dewey
STAMP := $(VENV)/.installed
SOURCES := $(wildcard packages/*/pyproject.toml) requirements-dev.txt

.PHONY: demo test install lint bench gpu-check clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first: a bare `torch` requirement would otherwise pull a multi-GB CUDA build.
$(STAMP): $(PY) $(SOURCES)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q -e "packages/dewey-core[images,cli,openvino,serve,train]" $(addprefix -e ,$(filter-out packages/dewey-core,$(PACKAGES))) -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) examples/quickstart.py

lint: install
	$(PY) -m ruff check .

test: install lint
	$(PY) -m pytest -q

bench: install
	$(PY) -m dewey_core.bench

gpu-check:
	bash scripts/gpu_check.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

"""Each adapter installs on its own into a fresh virtual environment and pulls in dewey-core.

dewey-core is resolved from a local wheel directory (``--find-links``), as it would be from an
index; torch is installed first, at the version of this environment, so pip never pulls a
multi-GB CUDA build.
"""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = {
    "langchain-dewey": "from langchain_dewey import DeweyEmbeddings",
    "llamaindex-dewey": "from llamaindex_dewey import DeweyEmbedding, DeweyNodeParser",
    "haystack-dewey": "from haystack_dewey import DeweyDocumentEmbedder, DeweyTextEmbedder",
}


def run(*args: str | Path) -> str:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fresh")
    venv.create(root / "venv", with_pip=True)
    python = root / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", f"torch=={torch.__version__.split('+')[0]}")
    wheels = root / "wheels"
    run(python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, ROOT / "packages" / "dewey-core")
    return python, wheels


@pytest.mark.slow
@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_adapter_installs_alone_and_imports(fresh_env, adapter):
    python, wheels = fresh_env
    run(python, "-m", "pip", "install", "-q", "--find-links", wheels, ROOT / "packages" / adapter)
    out = run(python, "-c", f"{ADAPTERS[adapter]}; import dewey_core; print(dewey_core.__file__)")
    assert "site-packages" in out  # the installed wheel, not the source tree
    freeze = run(python, "-m", "pip", "freeze")
    assert "dewey-core" in freeze.replace("_", "-")

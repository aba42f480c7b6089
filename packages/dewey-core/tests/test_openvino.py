"""The OpenVINO backend (opt-in) gives the torch backend's vectors; torch is the default."""

from __future__ import annotations

import numpy as np
import pytest

from dewey_core import DeweyEncoder
from dewey_core import openvino as ov_backend
from dewey_core.testing import tiny_dewey, tiny_encoder, tiny_stella, tiny_stella_400m

pytest.importorskip("openvino", reason="the OpenVINO backend is the openvino extra")

TEXTS = ["Saffron is a spice made from crocus flowers. " * k for k in (1, 3, 7)] + [
    "hi", "", "Rust is a language for systems programming."]
DOC = "Ardenvale lies in the hills. Its economy depends on saffron. " * 12
SUPPORTED = {
    "bert (MiniLM)": None,
    "roberta": lambda d: tiny_encoder(d, "roberta"),
    "mpnet": lambda d: tiny_encoder(d, "mpnet"),
    "qwen2 causal": lambda d: tiny_encoder(d, "qwen2"),
    "stella 1.5B (qwen2)": tiny_stella,
    "stella 400M (gte)": tiny_stella_400m,
}


@pytest.fixture(autouse=True)
def default_backend(monkeypatch, tmp_path_factory):
    """No backend preference in the environment, and a cache of converted models that lives
    as long as the test session."""
    monkeypatch.delenv("DEWEY_BACKEND", raising=False)
    monkeypatch.setenv("DEWEY_CACHE", str(tmp_path_factory.getbasetemp() / "dewey-cache"))


@pytest.mark.parametrize("name", list(SUPPORTED))
def test_openvino_matches_torch(name, tmp_path, minilm_path):
    path = minilm_path if SUPPORTED[name] is None else SUPPORTED[name](tmp_path)
    fast = DeweyEncoder.from_pretrained(path, device="cpu", backend="openvino")
    torch_ = DeweyEncoder.from_pretrained(path, device="cpu", backend="torch")
    assert fast.model.backend == "openvino" and torch_.model.backend == "torch"
    assert fast.model.backbone is torch_.model.backbone  # one copy of the weights
    a, b = fast.encode_documents(TEXTS), torch_.encode_documents(TEXTS)
    assert float((a * b).sum(1).min()) >= 0.99999
    x, y = fast.late_chunk([DOC], chunk_size=12)[0], torch_.late_chunk([DOC], chunk_size=12)[0]
    assert float((x.chunk_embeddings * y.chunk_embeddings).sum(1).min()) >= 0.99999


def test_conversion_is_cached_on_disk(tmp_path, monkeypatch):
    path = tiny_encoder(tmp_path / "model", "roberta")
    converted = []
    original = ov_backend._convert
    monkeypatch.setattr(ov_backend, "_convert", lambda m, t: converted.append(t) or original(m, t))
    first = DeweyEncoder.from_pretrained(path, device="cpu", backend="openvino")
    # What a new process does: compile the model again from the cache, without converting it.
    second = DeweyEncoder(ov_backend.on_openvino(
        DeweyEncoder.from_pretrained(path, device="cpu", backend="torch").model))
    assert len(converted) == 1 and second.model.forward is not first.model.forward
    np.testing.assert_allclose(first.encode_documents(TEXTS), second.encode_documents(TEXTS),
                               atol=1e-6)


def test_torch_is_the_default_and_the_environment_can_prefer_openvino(tmp_path, minilm_path,
                                                                      monkeypatch):
    assert DeweyEncoder.from_pretrained(minilm_path, device="cpu").model.backend == "torch"
    monkeypatch.setenv("DEWEY_BACKEND", "openvino")
    assert DeweyEncoder.from_pretrained(minilm_path, device="cpu").model.backend == "openvino"
    # A preference, not an order: what OpenVINO cannot run stays on torch.
    assert DeweyEncoder.from_pretrained(tiny_dewey(tmp_path), device="cpu").model.backend == "torch"
    assert DeweyEncoder.from_pretrained(minilm_path, device="cpu", backend="torch").model.backend \
        == "torch"
    monkeypatch.setenv("DEWEY_BACKEND", "onnx")
    with pytest.raises(ValueError, match="DEWEY_BACKEND must be one of"):
        DeweyEncoder.from_pretrained(minilm_path, device="cpu")


def test_families_it_cannot_run_stay_on_torch(tmp_path, minilm_path):
    dewey = tiny_dewey(tmp_path)
    assert DeweyEncoder.from_pretrained(dewey, device="cpu").model.backend == "torch"
    with pytest.raises(ValueError, match="dewey models run on torch"):
        DeweyEncoder.from_pretrained(dewey, device="cpu", backend="openvino")
    with pytest.raises(ValueError, match="runs float32 models"):
        DeweyEncoder.from_pretrained(minilm_path, device="cpu", dtype="bfloat16", backend="openvino")
    assert DeweyEncoder.from_pretrained(minilm_path, device="cpu", dtype="bfloat16").model.backend \
        == "torch"
    with pytest.raises(ValueError, match="backend must be one of"):
        DeweyEncoder.from_pretrained(minilm_path, device="cpu", backend="onnx")


def test_packed_batches_are_refused_on_openvino(minilm_path):
    with pytest.raises(ValueError, match="cannot run packed batches"):
        DeweyEncoder.from_pretrained(minilm_path, device="cpu", packed=True, backend="openvino")

"""The linear layers' products of float32 CPU models, on oneDNN: float32 products give torch's
own vectors, bfloat16 products stay within cosine 0.9999 of float32 for every family; the
choice is named in ``repr``, settable, and refused where it cannot apply.

(The rest of the suite runs with ``DEWEY_CPU_MATMUL=float32``, set in the root conftest, since
it compares vectors with float32 references at 1e-5.)"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from dewey_core import DeweyEncoder
from dewey_core.cpu_matmul import (
    ROW_BLOCK,
    BF16MatmulLinear,
    OneDNNLinear,
    native_bf16,
    onednn_linear,
    resolve_matmul_dtype,
    use_cpu_products,
)
from dewey_core.models import load_model
from dewey_core.testing import tiny_dewey, tiny_encoder, tiny_jasper, tiny_stella

CPU = torch.device("cpu")


def cosines(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, minilm_path) -> dict[str, str]:
    root = tmp_path_factory.mktemp("matmul")
    return {"minilm": minilm_path, "dewey": str(tiny_dewey(root / "dewey")),
            "jasper": str(tiny_jasper(root / "jasper")), "stella": str(tiny_stella(root / "stella")),
            "roberta": str(tiny_encoder(root / "roberta", "roberta"))}


@pytest.mark.parametrize("family", ["minilm", "dewey", "jasper", "stella", "roberta"])
def test_bf16_products_stay_within_cosine_0_9999_of_float32(checkpoints, family, pydoc_topics):
    bf16 = DeweyEncoder.from_pretrained(checkpoints[family], device="cpu", matmul_dtype="bfloat16")
    fp32 = DeweyEncoder.from_pretrained(checkpoints[family], device="cpu", matmul_dtype="float32")
    assert bf16.model is not fp32.model and bf16.model.matmul_dtype == "bfloat16"
    linears = [m for m in bf16.model.backbone.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m, BF16MatmulLinear) for m in linears)
    assert not any(isinstance(m, BF16MatmulLinear) for m in fp32.model.backbone.modules())
    texts = [pydoc_topics[t][:600] for t in ("for", "while", "try", "with")]
    assert cosines(bf16.encode_documents(texts), fp32.encode_documents(texts)).min() >= 0.9999
    assert cosines(bf16.encode_queries(texts[:2]), fp32.encode_queries(texts[:2])).min() >= 0.9999
    long = [pydoc_topics["class"][:6000]]
    a, b = bf16.late_chunk(long, chunk_size=64)[0], fp32.late_chunk(long, chunk_size=64)[0]
    assert [c.start for c in a.chunks] == [c.start for c in b.chunks]
    assert cosines(a.chunk_embeddings, b.chunk_embeddings).min() >= 0.9999
    assert cosines(a.global_embedding, b.global_embedding) >= 0.9999
    if bf16.model.supports_images:
        image = Image.new("RGB", (48, 32), (200, 30, 30))
        assert cosines(bf16.encode_images([image]), fp32.encode_images([image])).min() >= 0.9999


def test_the_choice_is_named_and_follows_the_cpu(minilm_path, monkeypatch):
    monkeypatch.delenv("DEWEY_CPU_MATMUL")
    native = "bfloat16" if native_bf16() else "float32"
    assert resolve_matmul_dtype(None, CPU, torch.float32) == native
    default = DeweyEncoder.from_pretrained(minilm_path, device="cpu")
    assert (f"matmul_dtype={native!r}" in repr(default)) == (native == "bfloat16" or onednn_linear())
    monkeypatch.setenv("DEWEY_CPU_MATMUL", "float32")
    assert resolve_matmul_dtype(None, CPU, torch.float32) == "float32"
    assert resolve_matmul_dtype("bfloat16", CPU, torch.float32) == "bfloat16"  # the argument wins
    float32 = repr(DeweyEncoder.from_pretrained(minilm_path, device="cpu"))
    assert ("matmul_dtype='float32'" in float32) == onednn_linear()


def test_where_bf16_products_cannot_apply_it_is_said(minilm_path, monkeypatch):
    with pytest.raises(ValueError, match=r"matmul_dtype must be one of \('float32', 'bfloat16'\)"):
        DeweyEncoder.from_pretrained(minilm_path, device="cpu", matmul_dtype="int8")
    monkeypatch.setenv("DEWEY_CPU_MATMUL", "fp16")
    with pytest.raises(ValueError, match="DEWEY_CPU_MATMUL must be one of"):
        DeweyEncoder.from_pretrained(minilm_path, device="cpu")
    monkeypatch.setenv("DEWEY_CPU_MATMUL", "bfloat16")
    with pytest.raises(ValueError, match="matmul_dtype='bfloat16' is for float32 models on the CPU; this one "
                                         "is bfloat16 on cpu"):
        DeweyEncoder.from_pretrained(minilm_path, device="cpu", dtype="bfloat16", matmul_dtype="bfloat16")
    # A bfloat16 model takes its own products; the preference does not apply to it.
    bf16_model = DeweyEncoder.from_pretrained(minilm_path, device="cpu", dtype="bfloat16").model
    assert bf16_model.matmul_dtype is None


needs_onednn = pytest.mark.skipif(not onednn_linear(), reason="torch is built without oneDNN here")


@needs_onednn
@pytest.mark.parametrize("family", ["minilm", "dewey", "jasper", "stella", "roberta"])
def test_float32_products_on_onednn_give_torchs_own_vectors(checkpoints, family, pydoc_topics):
    onednn = DeweyEncoder.from_pretrained(checkpoints[family], device="cpu", matmul_dtype="float32")
    own = DeweyEncoder(load_model(onednn.model.path, CPU, torch.float32))  # torch's nn.Linear
    linears = [m for m in onednn.model.backbone.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(type(m) is OneDNNLinear for m in linears)
    assert not any(isinstance(m, OneDNNLinear) for m in own.model.backbone.modules())
    texts = [pydoc_topics[t][:600] for t in ("for", "while", "try", "with")]
    np.testing.assert_allclose(onednn.encode_documents(texts), own.encode_documents(texts), atol=2e-6)
    long = [pydoc_topics["class"][:6000]]
    a, b = onednn.late_chunk(long, chunk_size=64)[0], own.late_chunk(long, chunk_size=64)[0]
    np.testing.assert_allclose(a.chunk_embeddings, b.chunk_embeddings, atol=2e-6)
    if onednn.model.supports_images:
        image = Image.new("RGB", (48, 32), (200, 30, 30))
        np.testing.assert_allclose(onednn.encode_images([image]), own.encode_images([image]), atol=2e-6)


def _ops(run) -> set[str]:
    """Names of the operators ``run()`` calls."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run()
    return {event.name for event in prof.events()}


def _turned(kind: str, bias: bool = True) -> tuple[torch.nn.Linear, torch.nn.Linear]:
    """A plain layer and a copy turned by ``use_cpu_products`` into ``kind`` products."""
    torch.manual_seed(0)
    plain = torch.nn.Linear(24, 40, bias=bias)
    holder = SimpleNamespace(backbone=copy.deepcopy(plain))
    assert use_cpu_products(holder, kind) == 1
    return plain, holder.backbone


@needs_onednn
@pytest.mark.parametrize("shape", [(0, 24), (24,), (1, 24), (ROW_BLOCK, 24), (ROW_BLOCK + 1, 24),
                                   (3, 37, 24), (2, 1, 5, 24)])
@pytest.mark.parametrize("bias", [True, False])
def test_onednn_linear_matches_torch_for_any_rows(shape, bias):
    plain, layer = _turned("float32", bias)
    assert type(layer) is OneDNNLinear
    x = torch.randn(*shape)
    strided = torch.randn(shape[-1], *shape[:-1]).movedim(0, -1)  # not contiguous
    with torch.inference_mode():
        assert "mkldnn::_linear_pointwise" in _ops(lambda: layer(x))  # oneDNN runs, not a fallback
        for inputs in (x, strided):
            out = layer(inputs)
            assert out.shape == (*shape[:-1], 40)
            torch.testing.assert_close(out, plain(inputs), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not native_bf16(), reason="this CPU computes no bfloat16 natively")
@pytest.mark.parametrize("shape", [(0, 24), (24,), (ROW_BLOCK + 1, 24), (3, 37, 24)])
def test_bf16_linear_keeps_shapes_and_stays_close_for_any_rows(shape):
    plain, layer = _turned("bfloat16")
    assert type(layer) is BF16MatmulLinear
    x = torch.randn(*shape)
    with torch.inference_mode():
        out = layer(x)
        assert out.shape == (*shape[:-1], 40) and out.dtype == torch.float32
        torch.testing.assert_close(out, plain(x), rtol=2e-2, atol=2e-2)


@needs_onednn
@pytest.mark.filterwarnings("ignore:`torch.jit.trace")
def test_onednn_linear_leaves_autograd_tracing_and_autocast_to_torch():
    plain, layer = _turned("float32")
    x = torch.randn(5, 24)
    layer(x).square().sum().backward()  # oneDNN's op has no gradient: torch's product runs
    plain(x).square().sum().backward()
    torch.testing.assert_close(layer.weight.grad, plain.weight.grad)
    torch.testing.assert_close(layer.bias.grad, plain.bias.grad)
    layer.weight.requires_grad_(False)  # a trainable bias alone still gets its gradient
    layer.bias.grad = None
    layer(x).square().sum().backward()
    torch.testing.assert_close(layer.bias.grad, plain.bias.grad)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert "mkldnn::_linear_pointwise" not in _ops(lambda: layer(x))
    traced = torch.jit.trace(layer.eval(), x)
    assert "mkldnn" not in str(traced.inlined_graph)


@pytest.mark.filterwarnings("ignore:TF32 acceleration")
def test_onednn_can_be_turned_off_with_torchs_own_flag():
    with torch.backends.mkldnn.flags(enabled=False):
        assert not onednn_linear()
        holder = SimpleNamespace(backbone=torch.nn.Linear(4, 4))
        assert use_cpu_products(holder, "float32") == 0 and type(holder.backbone) is torch.nn.Linear
    with pytest.raises(ValueError, match="matmul_dtype must be one of"):
        use_cpu_products(holder, "float16")

"""The linear layers' matrix products for float32 models on the CPU, on oneDNN.

torch's float32 ``nn.Linear`` runs on MKL, which on this project's AMD EPYC takes a generic
code path (``MKL_VERBOSE`` names no AVX-512; oneDNN's verbose output does); oneDNN (also bundled
with torch) runs the same float32 products there at 2.1-2.4 times MKL's rate, with float32
results (relative error 1e-6, as MKL's). On CPUs that compute
bfloat16 natively (AVX512-BF16 or AMX) oneDNN's bfloat16 products are faster still (another
1.3-1.6x), so there the default keeps the model in float32 and runs only its linear layers in
bfloat16: each layer's weight is stored in bfloat16, its input is rounded to bfloat16, and the
product is accumulated and returned in float32 (the bias added in float32). A whole bfloat16
model is slower: its norms, GELUs and residual additions are slow in bfloat16. Everything
but the products (norms, activations, attention, pooling) stays float32; vectors stay within
cosine 0.9999 of float32 (``tests/test_cpu_matmul.py`` checks every family).

oneDNN builds a kernel for each new number of rows (up to 11 ms each for a MiniLM-sized
bfloat16 product, measured here), so more than :data:`ROW_BLOCK` rows are padded to a multiple
of it: a server's varied batch shapes then reuse a few kernels, and short queries pay nothing.

``matmul_dtype`` (``DeweyEncoder.from_pretrained``) or ``$DEWEY_CPU_MATMUL`` chooses:
``"bfloat16"``, ``"float32"``, or unset for the CPU's native choice. Models loaded with
``trust_remote_code`` keep float32 products unless ``matmul_dtype`` asks (their own code may
read a linear layer's weight dtype) and keep torch's own; OpenVINO runs float32 (it traces the
plain products). Autograd (training), tracing, compiling and autocast see torch's own products,
and ``torch.backends.mkldnn.enabled = False`` before loading keeps them everywhere.

Example:
    >>> import torch
    >>> from dewey_core.cpu_matmul import resolve_matmul_dtype
    >>> resolve_matmul_dtype("float32", torch.device("cpu"), torch.float32)
    'float32'
    >>> resolve_matmul_dtype(None, torch.device("cpu"), torch.bfloat16) is None  # not a float32 model
    True
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import torch

MATMUL_DTYPES = ("float32", "bfloat16")


@functools.lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 products natively (AVX512-BF16 or AMX), as oneDNN sees it."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_matmul_dtype(matmul_dtype: str | None, device: torch.device, dtype: torch.dtype) -> str | None:
    """The linear layers' product dtype for a model on ``device`` in ``dtype``: ``None`` where
    the choice does not apply (not a float32 model on the CPU; ``"float32"`` asked for such a
    model is its own products, so it is accepted), else ``"bfloat16"`` or ``"float32"``
    (``matmul_dtype``, else ``$DEWEY_CPU_MATMUL``, else the CPU's native choice)."""
    chosen = matmul_dtype if matmul_dtype is not None else (os.environ.get("DEWEY_CPU_MATMUL") or None)
    if chosen is not None and chosen not in MATMUL_DTYPES:
        source = "matmul_dtype" if matmul_dtype is not None else "DEWEY_CPU_MATMUL"
        raise ValueError(f"{source} must be one of {MATMUL_DTYPES} or unset, got {chosen!r}")
    if device.type != "cpu" or dtype != torch.float32:
        if matmul_dtype == "bfloat16":
            raise ValueError(f"matmul_dtype='bfloat16' is for float32 models on the CPU; this one is "
                             f"{str(dtype).removeprefix('torch.')} on {device}")
        return None
    if chosen is None:
        chosen = "bfloat16" if native_bf16() else "float32"
    return chosen


#: More rows than this are padded to a multiple of it, so oneDNN reuses its kernels.
ROW_BLOCK = 32


def onednn_linear() -> bool:
    """Whether torch's oneDNN linear op is there and enabled (``torch.backends.mkldnn``)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
                    and torch.ops.mkldnn._linear_pointwise)
    except (AttributeError, RuntimeError):
        return False


def _plain(module: torch.nn.Linear, x: torch.Tensor) -> bool:
    """Whether ``x`` takes torch's own product: oneDNN's op has no gradient, and tracing,
    compiling and autocast expect torch's ops."""
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return True
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.is_autocast_enabled("cpu"):
        return True
    return torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, module.weight, module.bias))


def _in_row_blocks(x: torch.Tensor, product) -> torch.Tensor:
    """``product`` of ``x``'s rows (all leading dimensions flattened); more than
    :data:`ROW_BLOCK` rows are padded to a multiple of it and cut back."""
    rows = x.reshape(-1, x.shape[-1])
    n = rows.shape[0]
    padded = -(-n // ROW_BLOCK) * ROW_BLOCK
    if n > ROW_BLOCK and padded != n:
        rows = torch.nn.functional.pad(rows, (0, 0, 0, padded - n))
    out = product(rows)
    return out[:n].reshape(*x.shape[:-1], out.shape[-1])


class OneDNNLinear(torch.nn.Linear):
    """A float32 linear layer whose product runs on oneDNN (made from an ``nn.Linear`` by
    :func:`use_cpu_products`, in place; the weight is unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _plain(self, x):
            return super().forward(x)
        return _in_row_blocks(x, lambda rows: torch.ops.mkldnn._linear_pointwise(
            rows, self.weight, self.bias, "none", [], ""))

    def extra_repr(self) -> str:
        return super().extra_repr() + ", matmul=float32 on oneDNN"


class BF16MatmulLinear(torch.nn.Linear):
    """A linear layer whose weight is bfloat16 and whose product is accumulated and returned in
    float32 (made from a float32 ``nn.Linear`` by :func:`use_cpu_products`, in place)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x @ W^T on the stored (out, in) weight: oneDNN's fastest bf16 layout here.
        out = _in_row_blocks(x, lambda rows: torch.matmul(rows.to(torch.bfloat16), self.weight.t()).float())
        return out if self.bias is None else out.add_(self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", matmul=bfloat16"


def _modules(value: Any) -> Iterator[torch.nn.Module]:
    if isinstance(value, torch.nn.Module):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _modules(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _modules(v)


def use_cpu_products(model: Any, matmul_dtype: str) -> int:
    """Turn every float32 ``nn.Linear`` of ``model`` (an ``EncoderModel``: its backbone and heads)
    into a :class:`BF16MatmulLinear` (``"bfloat16"``) or a :class:`OneDNNLinear` (``"float32"``,
    where torch has oneDNN), in place; returns how many were turned."""
    if matmul_dtype not in MATMUL_DTYPES:
        raise ValueError(f"matmul_dtype must be one of {MATMUL_DTYPES}, got {matmul_dtype!r}")
    if matmul_dtype == "float32" and not onednn_linear():
        return 0
    turned = 0
    for root in _modules(list(vars(model).values())):
        for module in root.modules():
            if type(module) is torch.nn.Linear and module.weight.dtype == torch.float32:
                if matmul_dtype == "bfloat16":
                    module.weight = torch.nn.Parameter(module.weight.detach().to(torch.bfloat16),
                                                       requires_grad=False)
                    module.__class__ = BF16MatmulLinear
                else:
                    if module.bias is not None:  # oneDNN reads the bias as a dense vector
                        module.bias.data = module.bias.data.contiguous()
                    module.__class__ = OneDNNLinear
                turned += 1
    return turned

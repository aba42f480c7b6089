"""bfloat16 matrix products for float32 models on CPUs that compute bfloat16 natively.

A whole model in bfloat16 runs *slower* than float32 on such CPUs (measured on AMD EPYC and
Intel Xeon with AVX512-BF16): its layer norms, GELUs and residual additions are slow in
bfloat16. Its matrix products are not: oneDNN runs them at about 2.5 times the float32 rate.
So on these CPUs the default keeps the model in float32 and runs only its linear layers in
bfloat16: each layer's weight is stored in bfloat16, its input is rounded to bfloat16, and the
product is accumulated and returned in float32 (the bias added in float32). Everything else
(norms, activations, attention, pooling) stays float32. Vectors stay within cosine 0.9999 of
float32 (``tests/test_cpu_matmul.py`` checks every family).

``matmul_dtype`` (``DeweyEncoder.from_pretrained``) or ``$DEWEY_CPU_MATMUL`` chooses:
``"bfloat16"``, ``"float32"``, or unset for the CPU's native choice. Models loaded with
``trust_remote_code`` keep float32 products unless ``matmul_dtype`` asks (their own code may
read a linear layer's weight dtype); OpenVINO runs float32.

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


class BF16MatmulLinear(torch.nn.Linear):
    """A linear layer whose weight is bfloat16 and whose product is accumulated and returned in
    float32 (made from a float32 ``nn.Linear`` by :func:`use_bf16_matmul`, in place)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x @ W^T on the stored (out, in) weight: oneDNN's fastest bf16 layout here.
        out = torch.matmul(x.to(torch.bfloat16), self.weight.t()).float()
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


def use_bf16_matmul(model: Any) -> int:
    """Turn every float32 ``nn.Linear`` of ``model`` (an ``EncoderModel``: its backbone and heads)
    into a :class:`BF16MatmulLinear`, in place; returns how many were turned."""
    turned = 0
    for root in _modules(list(vars(model).values())):
        for module in root.modules():
            if type(module) is torch.nn.Linear and module.weight.dtype == torch.float32:
                module.weight = torch.nn.Parameter(module.weight.detach().to(torch.bfloat16),
                                                   requires_grad=False)
                module.__class__ = BF16MatmulLinear
                turned += 1
    return turned

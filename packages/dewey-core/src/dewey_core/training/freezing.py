"""Which of a student's parameters ``freeze_layers`` keeps at their starting weights."""

from __future__ import annotations

import re
from collections.abc import Iterable

# The transformer block index in a parameter's name: ``encoder.layer.3.`` (BERT, RoBERTa,
# MPNet), ``layers.3.`` (Qwen2, Llama, ModernBERT), ``h.3.`` / ``block.3.`` (GPT-2, T5).
_LAYER = re.compile(r"(?:^|\.)(?:layer|layers|h|block)\.(\d+)\.")


def layer_index(name: str) -> int | None:
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


def count_layers(names: Iterable[str]) -> int:
    indices = {layer_index(n) for n in names} - {None}
    return max(indices) + 1 if indices else 0


def frozen(name: str, freeze_layers: int) -> bool:
    """Whether ``name`` stays at its starting weights: the embeddings and the first
    ``freeze_layers`` blocks, once any layer is frozen; pooler and final norms always train.

    Example:
        >>> frozen("encoder.layer.1.attention.self.query.weight", 2)
        True
        >>> frozen("encoder.layer.2.output.dense.bias", 2)
        False
        >>> frozen("embeddings.word_embeddings.weight", 1), frozen("embeddings.word_embeddings.weight", 0)
        (True, False)
    """
    if freeze_layers <= 0:
        return False
    index = layer_index(name)
    if index is not None:
        return index < freeze_layers
    return "embed" in name

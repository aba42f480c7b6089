"""Checkpoints of a training run: one file, written atomically, read back without pickle code.

``OUT/training/checkpoint.pt`` holds the step reached, the trainable weights, the optimiser
and schedule state, the loss history and the evaluation before training, with the run's
settings. It is read with ``torch.load(weights_only=True)`` (tensors and plain values only).
Batches are drawn from ``(seed, step)``, so a resumed run takes the batches an uninterrupted
one would, from the same state (its weights can differ in the last bits, where a kernel sums
in another order).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(folder: Path, state: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CHECKPOINT
    tmp = path.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(folder: Path) -> dict[str, Any] | None:
    path = folder / CHECKPOINT
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def remove_checkpoint(folder: Path) -> None:
    (folder / CHECKPOINT).unlink(missing_ok=True)

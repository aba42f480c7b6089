"""The forward step: run token-id sequences through a backbone in token-budget batches.

Padded batches (with an attention mask) are the default; packed batches put several sequences
in one row with restarting ``position_ids`` and either flash-attention's ``cu_seq_lens`` (GPU)
or a block-diagonal 4-D mask built on the device (see :mod:`dewey_core.attention`), so no
compute is spent on padding.
Each sequence's token states are handed to ``consume`` while still on the device, so callers
pool there and move only small vectors to the host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from dewey_core.batching import plan_batches

logger = logging.getLogger("dewey_core")

#: Below this many tokens a job finishes in seconds on a CPU: no progress bar unless asked.
AUTO_PROGRESS_MIN_TOKENS = 200_000


@dataclass(frozen=True)
class Batch:
    """Model inputs for one forward call, already on the model's device."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    position_ids: torch.Tensor | None
    packed_lengths: list[int] | None
    """Set for packed batches: the length of each sequence laid end to end in row 0."""
    extras: list[Any]
    """Per-sequence payloads a model family needs (e.g. images), in batch order."""
    flash_kwargs: dict[str, Any]


def _padded_batch(seqs: list[list[int]], pad_id: int, device: torch.device) -> Batch:
    longest = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), longest), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[row, : len(s)] = 1
    return Batch(ids.to(device), mask.to(device), None, None, [], {})


def _packed_batch(seqs: list[list[int]], device: torch.device, flash: bool) -> Batch:
    lengths = [len(s) for s in seqs]
    ids = torch.tensor([t for s in seqs for t in s], dtype=torch.long).unsqueeze(0)
    positions = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
    if flash:
        cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
        cu[1:] = torch.tensor(lengths).cumsum(0)
        cu = cu.to(device)
        kwargs = {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu,
                  "max_length_q": max(lengths), "max_length_k": max(lengths)}
        return Batch(ids.to(device), None, positions.to(device), lengths, [], kwargs)
    # Without flash kwargs the model's AttentionSpec builds the block mask on the device.
    return Batch(ids.to(device), None, positions.to(device), lengths, [], {})


def split_states(batch: Batch, states: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
    """Per-sequence ``(length, hidden)`` views of a batch's token states. Views keep the whole
    batch alive: consumers copy what they keep (see :func:`dewey_core.pooling.pool`)."""
    if batch.packed_lengths is not None:
        return list(torch.split(states[0], batch.packed_lengths))
    return [states[row, :n] for row, n in enumerate(lengths)]


def run_sequences(
    forward: Callable[[Batch], torch.Tensor],
    sequences: Sequence[list[int]],
    consume: Callable[[int, torch.Tensor], None],
    *,
    pad_id: int,
    device: torch.device,
    token_budget: int,
    max_batch_size: int | None = None,
    packed: bool = False,
    flash: bool = False,
    extras: Sequence[Any] | None = None,
    show_progress: bool | None = None,
    desc: str = "Encoding",
    grad: bool = False,
) -> int:
    """Run every sequence through ``forward`` and call ``consume(index, token_states)``.

    ``forward`` maps a :class:`Batch` to hidden states ``(rows, length, hidden)``. On CUDA
    out-of-memory a batch is halved and retried (logged once per call). ``grad=True`` keeps the
    autograd graph (training); otherwise everything runs under ``torch.inference_mode``. Returns
    the token positions the model ran (padding included): the work done, for benchmarks.
    """
    lengths = [len(s) for s in sequences]
    batches = plan_batches(lengths, token_budget, padded=not packed, max_batch_size=max_batch_size)
    total = sum(lengths)
    if show_progress is None:
        show_progress = total >= AUTO_PROGRESS_MIN_TOKENS
    warned = False
    positions = 0

    def batch_of(indices: list[int]) -> Batch:
        seqs = [list(sequences[i]) for i in indices]
        batch = _packed_batch(seqs, device, flash) if packed else _padded_batch(seqs, pad_id, device)
        if extras is not None:
            batch = Batch(batch.input_ids, batch.attention_mask, batch.position_ids,
                          batch.packed_lengths, [extras[i] for i in indices], batch.flash_kwargs)
        return batch

    def run(indices: list[int]) -> None:
        nonlocal warned, positions
        pending = [indices]
        while pending:
            part = pending.pop()
            batch = batch_of(part)
            try:
                states = forward(batch)
            except torch.cuda.OutOfMemoryError:
                if len(part) == 1:
                    raise
                states = None
            # Halved outside the ``except`` block: the failed batch's activations (held by the
            # exception's traceback) are freed before the retry.
            if states is None:
                if not warned:
                    logger.warning("CUDA out of memory on a batch of %d sequences; halving and "
                                   "retrying (lower token_budget to avoid this)", len(part))
                    warned = True
                del batch
                torch.cuda.empty_cache()
                half = len(part) // 2
                pending.extend([part[half:], part[:half]])  # the first half runs first
                continue
            positions += batch.input_ids.numel()
            for i, s in zip(part, split_states(batch, states, [lengths[i] for i in part]),
                            strict=True):
                consume(i, s)

    with torch.inference_mode(not grad), tqdm(total=total, disable=not show_progress, desc=desc,
                                      unit="tok", unit_scale=True) as bar:
        for indices in batches:
            run(indices)
            bar.update(sum(lengths[i] for i in indices))
    return positions

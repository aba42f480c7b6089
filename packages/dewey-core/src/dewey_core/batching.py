"""Token-budget batch planning: sort by length, pack until the budget, keep input order known."""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(lengths: Sequence[int], token_budget: int, *, padded: bool,
                 max_batch_size: int | None = None) -> list[list[int]]:
    """Group sequence indices into batches whose cost stays within ``token_budget``.

    Sequences are taken longest first, so each batch holds similar lengths and padding stays
    small. The cost of a padded batch is ``batch_size * longest``; of a packed (padding-free)
    batch, the sum of lengths. A sequence longer than the budget gets a batch of its own.
    Every index appears exactly once; callers restore input order by index.
    """
    if token_budget < 1:
        raise ValueError(f"token_budget must be positive, got {token_budget}")
    if max_batch_size is not None and max_batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {max_batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    batch: list[int] = []
    cost = 0
    for i in order:
        n = max(int(lengths[i]), 1)
        # Sorted descending: in a padded batch the first sequence is the longest.
        new_cost = (len(batch) + 1) * max(n, lengths[batch[0]] if batch else n) if padded \
            else cost + n
        if batch and (new_cost > token_budget or len(batch) == max_batch_size):
            batches.append(batch)
            batch, new_cost = [], n
        batch.append(i)
        cost = new_cost
    if batch:
        batches.append(batch)
    return batches

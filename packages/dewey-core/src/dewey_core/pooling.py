"""Pooling token states into vectors: whole-sequence modes and chunk (segment) means.

A model sequence is laid out as ``[prefix specials][prompt][skipped][kept content][suffix]``.
"Skipped" tokens are context carried into a later window of a long document: the model sees
them, their outputs are discarded. Modes:

- ``mean``: every token, specials and prompt included (sentence-transformers' default).
- ``mean_no_prompt``: every token after the prompt (sentence-transformers' ``include_prompt=False``).
- ``content_mean``: kept content tokens only; no special, prompt or skipped token.
- ``cls``: the first token. ``lasttoken``: the last token.
- ``cls_add_mean``: ``cls`` plus ``content_mean`` (dewey_en_beta's short-text mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

POOLING_MODES = ("mean", "mean_no_prompt", "content_mean", "cls", "lasttoken", "cls_add_mean")


@dataclass(frozen=True)
class Layout:
    """Token counts of the parts of one model sequence, in order."""

    n_prefix: int
    n_prompt: int
    n_skipped: int
    n_kept: int
    n_suffix: int

    @property
    def kept_start(self) -> int:
        return self.n_prefix + self.n_prompt + self.n_skipped

    @property
    def length(self) -> int:
        return self.kept_start + self.n_kept + self.n_suffix


def pool(states: torch.Tensor, mode: str, layout: Layout) -> torch.Tensor:
    """Pool ``states`` ``(length, hidden)`` of one sequence into ``(hidden,)`` (float32).

    The result never shares memory with ``states``: they are a view of a whole batch's hidden
    states, which a kept view would hold alive until the call ends.
    """
    if mode == "cls":
        return token_state(states, 0)
    if mode == "lasttoken":
        return token_state(states, -1)
    states = states.float()
    if mode == "mean":
        return states.mean(0)
    if mode == "mean_no_prompt":
        return states[layout.n_prefix + layout.n_prompt :].mean(0)
    content = content_mean(states, layout)
    if mode == "content_mean":
        return content
    if mode == "cls_add_mean":
        return states[0] + content
    raise ValueError(f"unknown pooling mode {mode!r}; expected one of {POOLING_MODES}")


def token_state(states: torch.Tensor, index: int) -> torch.Tensor:
    """One token's state as a float32 copy (not a view of the batch)."""
    return states[index].to(torch.float32, copy=True)


def content_mean(states: torch.Tensor, layout: Layout) -> torch.Tensor:
    """Mean of the kept content tokens; falls back to every token when there are none."""
    kept = states[layout.kept_start : layout.kept_start + layout.n_kept]
    return (kept if len(kept) else states).float().mean(0)


def segment_sums(states: torch.Tensor, ranges: list[tuple[int, int]]) -> torch.Tensor:
    """Sums of ``states[a:b]`` for each ``(a, b)`` in ``ranges``, as ``(len(ranges), hidden)``.

    Summed per range (not by prefix sums) so long documents lose no float32 precision.
    """
    if not ranges:
        return states.new_zeros((0, states.shape[-1]), dtype=torch.float32)
    return torch.stack([states[a:b].float().sum(0) for a, b in ranges])

"""Windows for documents longer than the model: overlap plus the document's carried opening.

A document of ``n`` content tokens that fits in one window is one sequence:
``[prefix][prompt][content][suffix]``. A longer one becomes windows; every window after the
first is ``[prefix][prompt][opening context][overlap][new tokens][suffix]``, where the opening
context is the document's first ``context_tokens`` tokens and the overlap the ``overlap_tokens``
tokens just before the new ones. Only the new tokens' outputs are kept, so every content token
gets exactly one state, computed with the document's opening and its left neighbourhood in view.
"""

from __future__ import annotations

from dataclasses import dataclass

from dewey_core.inputs import check_int
from dewey_core.pooling import Layout
from dewey_core.tokenization import TokenizedText


@dataclass(frozen=True)
class Window:
    doc: int
    ids: list[int]
    layout: Layout
    kept: tuple[int, int]
    """Content token range ``[first, last)`` whose outputs this window keeps."""


@dataclass(frozen=True)
class WindowPolicy:
    """How long documents are windowed. ``None`` knobs scale with the window's capacity."""

    context_tokens: int | None = None
    """Opening tokens carried into later windows (default: ``min(capacity // 8, 64)``)."""
    overlap_tokens: int | None = None
    """Tokens before each window's new tokens, outputs discarded (default:
    ``min(capacity // 16, 32)``)."""

    def __post_init__(self) -> None:
        for name, value in (("context_tokens", self.context_tokens),
                            ("window_overlap", self.overlap_tokens)):
            if check_int(value, name, optional=True) is None:
                continue
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")

    def resolve(self, capacity: int) -> tuple[int, int]:
        # Defaults keep the recomputed lead under ~19% of a window (compute at most ~1.23x the
        # document's tokens); on the contextual set 8 to 64 carried tokens all recover most of
        # what plain windows lose (README, "Late chunking quality": the windows table).
        context = min(capacity // 8, 64) if self.context_tokens is None else self.context_tokens
        overlap = min(capacity // 16, 32) if self.overlap_tokens is None else self.overlap_tokens
        if context + overlap >= capacity:
            raise ValueError(f"context_tokens + window_overlap ({context} + {overlap}) must be "
                             f"smaller than the window's capacity of {capacity} content tokens")
        return context, overlap


def capacity(max_length: int, n_special: int, n_prompt: int) -> int:
    """Content tokens that fit in one sequence."""
    room = max_length - n_special - n_prompt
    if room < 1:
        raise ValueError(f"a {max_length}-token window has no room for text after {n_special} "
                         f"special and {n_prompt} prompt tokens; raise max_length or shorten the prompt")
    return room


def plan_windows(doc: int, tok: TokenizedText, prefix: tuple[int, ...], suffix: tuple[int, ...],
                 max_length: int, policy: WindowPolicy) -> list[Window]:
    """The windows of one document, in order; a document that fits is one window."""
    room = capacity(max_length, len(prefix) + len(suffix), len(tok.prompt_ids))
    ids, n = list(tok.ids), len(tok)
    head = [*prefix, *tok.prompt_ids]

    def window(skipped: list[int], first: int, last: int) -> Window:
        layout = Layout(len(prefix), len(tok.prompt_ids), len(skipped), last - first, len(suffix))
        return Window(doc, [*head, *skipped, *ids[first:last], *suffix], layout, (first, last))

    if n <= room:
        return [window([], 0, n)]
    context, overlap = policy.resolve(room)
    windows = [window([], 0, room)]
    first = room
    while first < n:
        # first >= room > context + overlap, so opening context and overlap never meet.
        lead = ids[:context] + ids[first - overlap : first]
        last = min(first + room - len(lead), n)
        windows.append(window(lead, first, last))
        first = last
    return windows

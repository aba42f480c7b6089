"""The built-in chunker: token-budget chunks that prefer paragraph and sentence boundaries.

Chunks are token ranges of a :class:`~dewey_core.tokenization.TokenizedText`; their character
spans tile the text (no gaps, no overlaps unless ``chunk_overlap`` asks), so whitespace between
chunks belongs to the chunk before it.
"""

from __future__ import annotations

from dewey_core.inputs import check_int
from dewey_core.tokenization import TokenizedText

CHUNKING_MODES = ("boundaries", "fixed")
_SENTENCE_END = set(".!?。！？…")
# Preference of a break point between two tokens, by what separates them.
_PARAGRAPH, _LINE, _SENTENCE, _WORD, _NONE = 4, 3, 2, 1, 0


def check_chunking(chunk_size: int, chunk_overlap: int, mode: str) -> None:
    """The built-in chunker's settings: ``chunk_size >= 1``, ``0 <= chunk_overlap < chunk_size``."""
    check_int(chunk_size, "chunk_size")
    check_int(chunk_overlap, "chunk_overlap")
    if mode not in CHUNKING_MODES:
        raise ValueError(f"unknown chunking mode {mode!r}; expected one of {CHUNKING_MODES}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if not 0 <= chunk_overlap < chunk_size:
        raise ValueError(f"chunk_overlap must be in [0, chunk_size), got {chunk_overlap}")


def _break_score(text: str, tok: TokenizedText, i: int) -> int:
    """How good a chunk boundary is just before token ``i``."""
    gap = text[tok.ends[i - 1] : tok.starts[i]]
    if gap.count("\n") >= 2:
        return _PARAGRAPH
    if "\n" in gap:
        return _LINE
    last = text[tok.ends[i - 1] - 1] if tok.ends[i - 1] > 0 else ""
    if last in _SENTENCE_END and (gap or last in "。！？"):
        return _SENTENCE
    return _WORD if gap else _NONE


def chunk_token_ranges(text: str, tok: TokenizedText, chunk_size: int, chunk_overlap: int = 0,
                       mode: str = "boundaries") -> list[tuple[int, int]]:
    """Token ranges ``[first, last)`` of at most ``chunk_size`` tokens covering every token.

    ``boundaries`` ends each chunk at the best break in the second half of its budget
    (paragraph > line > sentence > word); ``fixed`` cuts every ``chunk_size`` tokens.
    Consecutive chunks share ``chunk_overlap`` tokens.
    """
    check_chunking(chunk_size, chunk_overlap, mode)
    n = len(tok)
    ranges: list[tuple[int, int]] = []
    start = 0
    while start < n:
        end = min(start + chunk_size, n)
        if mode == "boundaries" and end < n:
            lowest = start + max(chunk_size // 2, chunk_overlap + 1)
            best = max(range(end, lowest - 1, -1), key=lambda i: _break_score(text, tok, i),
                       default=end)
            if _break_score(text, tok, best) > _NONE:
                end = best
        # Byte-level BPE splits one character into tokens sharing a start: never cut between them.
        while start + 1 < end < n and tok.starts[end] == tok.starts[end - 1]:
            end -= 1
        ranges.append((start, end))
        if end == n:
            break
        start = max(end - chunk_overlap, start + 1)
    return ranges


def char_spans(text: str, tok: TokenizedText, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Character spans of token ranges. Without overlap they tile ``text`` exactly."""
    spans = []
    for j, (first, last) in enumerate(ranges):
        start = 0 if j == 0 else tok.starts[first]
        if j + 1 == len(ranges):
            end = len(text)
        elif ranges[j + 1][0] >= last:  # no overlap: run up to where the next chunk starts
            end = tok.starts[ranges[j + 1][0]]
        else:
            end = tok.ends[last - 1]
        spans.append((start, end))
    return spans

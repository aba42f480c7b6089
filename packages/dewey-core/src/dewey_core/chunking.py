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
_CJK_SENTENCE_END = set("。！？")
#: Closing quotes and brackets that may follow a sentence's final punctuation.
_CLOSING = "\"')]}»”’"
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


def break_scores(text: str, tok: TokenizedText) -> list[int]:
    """How good a chunk boundary is just before each token (index 0 is never a boundary).

    Read from the text itself, not from gaps between token offsets: byte-level BPE folds a
    word's leading space into the word's token, so consecutive tokens never leave a gap. A break
    before token ``i`` is where its first non-space character follows whitespace (or a CJK
    sentence end); the whitespace run before it says what kind of break it is.
    """
    positions = tok.positions
    scores = [_NONE] * len(tok)
    for i in range(1, len(tok)):
        a = positions[i]
        if a >= len(text) or text[a].isspace() or tok.starts[i] < tok.ends[i - 1]:
            continue  # whitespace-only token, or a piece of the previous token's character
        g = a
        while g > 0 and text[g - 1].isspace():
            g -= 1
        gap = text[g:a]
        k = g
        while k > 0 and text[k - 1] in _CLOSING:
            k -= 1
        before = text[k - 1] if k > 0 else ""
        if gap.count("\n") >= 2:
            scores[i] = _PARAGRAPH
        elif "\n" in gap:
            scores[i] = _LINE
        elif before in _SENTENCE_END and (gap or before in _CJK_SENTENCE_END):
            scores[i] = _SENTENCE
        elif gap:
            scores[i] = _WORD
    return scores


def chunk_token_ranges(text: str, tok: TokenizedText, chunk_size: int, chunk_overlap: int = 0,
                       mode: str = "boundaries") -> list[tuple[int, int]]:
    """Token ranges ``[first, last)`` of at most ``chunk_size`` tokens covering every token
    (more only where one character's tokens exceed the budget: a character is never split).

    ``boundaries`` ends each chunk at the best break in the second half of its budget
    (paragraph > line > sentence > word); failing any, at the last word break in the first
    half, so a chunk is cut inside a word only when no word break fits its budget. ``fixed``
    cuts every ``chunk_size`` tokens. Consecutive chunks share ``chunk_overlap`` tokens (in
    ``boundaries`` mode the shared part starts at a word where one is within it).
    """
    check_chunking(chunk_size, chunk_overlap, mode)
    if tok.starts is None:
        raise ValueError("chunking needs character offsets; this text was tokenised with "
                         "offsets=False")
    n = len(tok)
    scores = break_scores(text, tok) if mode == "boundaries" else None
    ranges: list[tuple[int, int]] = []
    start = 0
    while start < n:
        end = min(start + chunk_size, n)
        if scores is not None and end < n:
            lowest = start + max(chunk_size // 2, chunk_overlap + 1)
            # Iterating from the end, max() keeps the latest of the best breaks.
            best = max(range(end, lowest - 1, -1), key=scores.__getitem__, default=end)
            if scores[best] == _NONE:
                best = next((i for i in range(min(lowest, end) - 1, start, -1) if scores[i]), best)
            if scores[best] > _NONE:
                end = best
        # Byte-level BPE splits one character over tokens whose character ranges overlap:
        # never cut between them; a budget smaller than one character takes the whole character.
        while start + 1 < end < n and tok.ends[end - 1] > tok.starts[end]:
            end -= 1
        while end < n and tok.ends[end - 1] > tok.starts[end]:
            end += 1
        ranges.append((start, end))
        if end == n:
            break
        next_start = max(end - chunk_overlap, start + 1)
        if scores is not None and chunk_overlap:
            next_start = next((i for i in range(next_start, end) if scores[i]), next_start)
        start = next_start
    return ranges


def char_spans(text: str, tok: TokenizedText, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Character spans of token ranges. Without overlap they tile ``text`` exactly; each chunk
    starts where its first token's text starts (after a folded-in space), so whitespace between
    chunks belongs to the chunk before it and :meth:`TokenizedText.token_range` maps the spans
    back to the same tokens."""
    positions = tok.positions
    spans = []
    for j, (first, last) in enumerate(ranges):
        start = 0 if j == 0 else positions[first]
        if j + 1 == len(ranges):
            end = len(text)
        elif ranges[j + 1][0] >= last:  # no overlap: run up to where the next chunk's text starts
            end = positions[ranges[j + 1][0]]
        else:
            end = tok.ends[last - 1]
        spans.append((start, end))
    return spans

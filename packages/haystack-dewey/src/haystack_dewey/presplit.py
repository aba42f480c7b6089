"""Rebuild source texts from documents that a Haystack splitter already cut.

Splitters give every split ``source_id`` (the parent's id), ``split_id`` (its position) and
mostly ``split_idx_start`` (its character offset in the parent). The splits of a source, in
order, lay its text back out, in one of two ways:

- **by offset** when every split has ``split_idx_start`` and they agree (``DocumentSplitter``):
  each split is placed at its offset; overlapping splits must share their characters, and a
  gap (text the splitter left out) is filled with spaces so that every offset stays exact;
- **in sequence** otherwise (``MarkdownHeaderSplitter`` gives no offsets; ``DocumentPreprocessor``
  cleans the splits after cutting them, so their offsets no longer fit their text): the splits
  are joined in ``split_id`` order, each overlapping the text before it by the longest run of
  characters they share when the splitter recorded an overlap (``_split_overlap``).

All splits of a source must be in one call: a source whose ``split_id``\\ s are not ``0..n-1``
is refused, since its missing text (and its global vector) would be wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from haystack import Document

logger = logging.getLogger(__name__)


@dataclass
class SplitGroup:
    """The splits of one source document and the text they rebuild."""

    source_id: str
    positions: list[int] = field(default_factory=list)
    """Indices of the splits in the caller's input list, in rebuilt-text order."""
    text: str = ""
    spans: list[tuple[int, int] | None] = field(default_factory=list)
    """Character span of each split in ``text`` (``None`` for an empty split), same order."""
    rebuilt: str = "offsets"
    """``"offsets"`` or ``"sequence"`` (see the module docstring)."""


def is_split(document: Document) -> bool:
    """A document that comes from a splitter carries its parent's id in ``source_id``."""
    return document.meta.get("source_id") is not None


def group_splits(documents: list[Document]) -> list[SplitGroup]:
    """Group split documents by ``source_id`` (first-seen order) and rebuild each parent text.

    :raises ValueError: a split without text, a source with missing ``split_id``\\ s, or splits
        that place overlapping text differently.
    """
    groups: dict[str, SplitGroup] = {}
    for i, doc in enumerate(documents):
        if not is_split(doc):
            continue
        if doc.content is None:
            raise ValueError(f"Document {doc.id} has no text content (content is None)")
        sid = str(doc.meta["source_id"])
        groups.setdefault(sid, SplitGroup(sid)).positions.append(i)
    for group in groups.values():
        has_ids = all(_split_id(documents[i]) is not None for i in group.positions)
        has_offsets = all(_offset(documents[i]) is not None for i in group.positions)
        if not has_ids and not has_offsets:
            raise ValueError(f"splits of source {group.source_id!r} carry neither split_id nor "
                             "split_idx_start, so their order in the source is unknown; remove "
                             "source_id to chunk such documents as whole documents")
        if has_ids:
            _check_complete(group, documents)
        mismatch = _by_offsets(group, documents) if has_offsets else "no split_idx_start"
        if mismatch is None:
            continue
        if not has_ids:
            raise ValueError(f"{mismatch}. Check that split_idx_start is a character offset into the "
                             "source text and that all splits come from the same source.")
        logger.info("Splits of source %s rebuilt in split_id order (%s).", group.source_id, mismatch)
        _in_sequence(group, documents)
    return list(groups.values())


def _offset(doc: Document) -> int | None:
    start = doc.meta.get("split_idx_start")
    return start if isinstance(start, int) and not isinstance(start, bool) and start >= 0 else None


def _split_id(doc: Document) -> int | None:
    split_id = doc.meta.get("split_id")
    return split_id if isinstance(split_id, int) and not isinstance(split_id, bool) else None


def _check_complete(group: SplitGroup, documents: list[Document]) -> None:
    ids = [_split_id(documents[i]) for i in group.positions]
    missing = sorted(set(range(max(ids) + 1)) - set(ids))
    if missing:
        raise ValueError(
            f"DeweyLateChunker got splits {_ranges(sorted(set(ids)))} of source {group.source_id!r} but "
            f"not {_ranges(missing)}: a split is embedded in the context of its whole source, so send "
            "all splits of a source in one run() call (e.g. connect the splitter's whole output)")


def _ranges(values: list[int]) -> str:
    parts, start = [], values[0]
    for previous, value in zip(values, [*values[1:], None], strict=True):
        if value != previous + 1:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = value
    return ", ".join(parts)


def _by_offsets(group: SplitGroup, documents: list[Document]) -> str | None:
    """Place each split at its offset; where the offsets do not fit the texts, say why."""
    group.positions.sort(key=lambda i: (_offset(documents[i]), _split_id(documents[i]) or 0, i))
    text, spans = "", []
    for i in group.positions:
        start, content = _offset(documents[i]), documents[i].content or ""
        if start > len(text):
            text += " " * (start - len(text))
        shared = text[start:]
        if content.startswith(shared):
            text += content[len(shared):]
        elif text[start:start + len(content)] != content:
            return (f"split {documents[i].meta.get('split_id', '?')} (document {documents[i].id}) of "
                    f"source {group.source_id!r} does not match the text of the splits before it at "
                    f"character {start}: expected {shared[:40]!r}..., got {content[:40]!r}...")
        spans.append((start, start + len(content)) if content else None)
    group.text, group.spans, group.rebuilt = text, spans, "offsets"
    return None


def _in_sequence(group: SplitGroup, documents: list[Document]) -> None:
    group.positions.sort(key=lambda i: (_split_id(documents[i]), i))
    text, spans = "", []
    for n, i in enumerate(group.positions):
        doc, content = documents[i], documents[i].content or ""
        shared = _overlap(text, content) if n and doc.meta.get("_split_overlap") else 0
        start = len(text) - shared
        text += content[shared:]
        spans.append((start, start + len(content)) if content else None)
    group.text, group.spans, group.rebuilt = text, spans, "sequence"


def _overlap(text: str, content: str) -> int:
    """The longest ``k`` with ``text`` ending in ``content[:k]``."""
    for k in range(min(len(text), len(content)), 0, -1):
        if text.endswith(content[:k]):
            return k
    return 0

"""Rebuild source texts from documents that a Haystack splitter already cut.

Splitters such as ``DocumentSplitter`` give every split ``source_id`` (the parent's id) and
``split_idx_start`` (its character offset in the parent). Ordered by that offset, the splits
lay the parent's text back out: overlapping splits must agree on their shared characters, and
a gap (text the splitter left out) is filled with spaces so that every offset stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from haystack import Document


@dataclass
class SplitGroup:
    """The splits of one source document and the text they rebuild."""

    source_id: str
    positions: list[int] = field(default_factory=list)
    """Indices of the splits in the caller's input list, in rebuilt-text order."""
    text: str = ""
    spans: list[tuple[int, int] | None] = field(default_factory=list)
    """Character span of each split in ``text`` (``None`` for an empty split), same order."""


def is_split(document: Document) -> bool:
    """A document that comes from a splitter carries its parent's id in ``source_id``."""
    return document.meta.get("source_id") is not None


def group_splits(documents: list[Document]) -> list[SplitGroup]:
    """Group split documents by ``source_id`` (first-seen order) and rebuild each parent text.

    :raises ValueError: a split without an int ``split_idx_start``, or splits whose overlapping
        text disagrees (they cannot come from one source text).
    """
    groups: dict[str, SplitGroup] = {}
    for i, doc in enumerate(documents):
        if not is_split(doc):
            continue
        start = doc.meta.get("split_idx_start")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(
                f"Document {doc.id} has source_id {doc.meta['source_id']!r} but split_idx_start is "
                f"{start!r}; a split needs its character offset in the source document (Haystack's "
                "DocumentSplitter sets it). Remove source_id to chunk the document as a whole.")
        if doc.content is None:
            raise ValueError(f"Document {doc.id} has no text content (content is None)")
        sid = str(doc.meta["source_id"])
        groups.setdefault(sid, SplitGroup(sid)).positions.append(i)
    for group in groups.values():
        _rebuild(group, documents)
    return list(groups.values())


def _order_key(doc: Document, position: int) -> tuple[int, int, int]:
    split_id = doc.meta.get("split_id")
    return doc.meta["split_idx_start"], split_id if isinstance(split_id, int) else 0, position


def _rebuild(group: SplitGroup, documents: list[Document]) -> None:
    group.positions.sort(key=lambda i: _order_key(documents[i], i))
    text = ""
    for i in group.positions:
        doc = documents[i]
        start, content = doc.meta["split_idx_start"], doc.content or ""
        if start > len(text):
            text += " " * (start - len(text))
        shared = text[start:]
        if content.startswith(shared):
            text += content[len(shared):]
        elif text[start:start + len(content)] != content:
            raise ValueError(
                f"Split {doc.meta.get('split_id', '?')} (document {doc.id}) of source {group.source_id!r} "
                f"does not match the text of the splits before it at character {start}: expected "
                f"{shared[:40]!r}..., got {content[:40]!r}... Check that split_idx_start is a character "
                "offset into the source text and that all splits come from the same source.")
        group.spans.append((start, start + len(content)) if content else None)
    group.text = text

"""The input of ``dewey embed``: documents with ids, and a clear error for each unreadable one.

A corpus is one of:

- a folder: every ``.txt``/``.md``/``.markdown`` file below it (linked folders followed), in
  path order; a document's id is its path relative to the folder. A folder with no such files
  but ``.parquet`` files is read as a Parquet dataset (next item). Other files are left out,
  and :attr:`Corpus.ignored` names them.
- a ``.parquet`` file, or a folder of them (read in path order): a string column ``text`` and
  an optional ``id`` column (string or integer); without one a row's id is ``row-N`` in a
  single file and ``FILE:row-N`` in a folder (FILE relative to it, N from 0 in each file, so
  an id never depends on the other files).
- a ``.jsonl`` file: one object per line with a string ``text`` and an optional ``id`` (string
  or integer); without one the id is ``line-N``, N the line number.

Each may be a local path or any URI pyarrow opens (:class:`dewey_core.files.Location`).
:meth:`Corpus.scan` yields the documents in that order, each with its *origin* (the file, or
``file.jsonl:LINE`` / ``file.parquet:row N``); in place of a document that cannot be read (or
whose id or text is not valid Unicode: a file name that is not UTF-8, a lone surrogate in
JSON) it yields a :class:`SourceError` naming the origin and the reason, and goes on.

``scan(with_text=False)`` yields ids without reading texts where the format allows (a folder's
file list, a Parquet file's ``id`` column): the distributed path settles ids, duplicates and
what is already stored on the driver, then reads texts in parallel with :meth:`Corpus.fetch`.

Example:
    >>> import json, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "docs.jsonl"
    >>> _ = path.write_text(json.dumps({"id": "a", "text": "Saffron."}) + "\\n{oops}\\n")
    >>> [type(item).__name__ for item in Corpus.open(path).scan()]
    ['SourceDocument', 'SourceError']
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from dewey_core.files import Location, reason
from dewey_core.inputs import lone_surrogate

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
PARQUET_SUFFIXES = (".parquet",)
KINDS = ("text", "jsonl", "parquet")
_SPAN_SLACK = 1 << 20  # JSONL lines at most this many bytes apart are read in one request


@dataclass(frozen=True)
class SourceDocument:
    doc_id: str
    text: str | None
    """``None`` from ``scan(with_text=False)`` until :meth:`Corpus.fetch` reads it."""
    origin: str
    """Where it was read: the file, ``file.jsonl:LINE`` or ``file.parquet:row N``."""
    file: str = ""
    """Its file, relative to the corpus (empty for a corpus that is one file)."""
    position: int = 0
    """JSONL: the line's byte offset; Parquet: the row's index in its file."""
    size: int = 0
    """JSONL: the line's length in bytes."""


@dataclass(frozen=True)
class SourceError:
    origin: str
    reason: str


@dataclass(frozen=True)
class Corpus:
    """A folder of text files, a JSONL file or Parquet, opened by :meth:`open`."""

    location: Location
    kind: str
    """One of :data:`KINDS`."""

    @classmethod
    def open(cls, where: str | os.PathLike | Location) -> Corpus:
        """Check that ``where`` exists and is a corpus; ``FileNotFoundError`` or ``ValueError``
        (naming it) otherwise."""
        location = Location.of(where)
        what = location.kind()
        if what == "missing":
            raise FileNotFoundError(f"input not found: {location.name}")
        if what == "folder":
            if location.list_files(TEXT_SUFFIXES) or not location.list_files(PARQUET_SUFFIXES):
                return cls(location, "text")
            return cls(location, "parquet")
        if location.suffix in (".jsonl", *PARQUET_SUFFIXES):
            return cls(location, location.suffix.lstrip("."))
        raise ValueError(f"input must be a folder, a .jsonl file or a .parquet file: {location.name}")

    def _files(self) -> list[str]:
        if self.location.kind() != "folder":
            return [""]
        return self.location.list_files(TEXT_SUFFIXES if self.kind == "text" else PARQUET_SUFFIXES)

    @property
    def ignored(self) -> list[str]:
        """A folder's files that are not read (neither its kind's suffixes), relative paths."""
        if self.location.kind() != "folder":
            return []
        read = set(self._files())
        return [f for f in self.location.list_files(None) if f not in read]

    def count(self) -> int:
        """How many items :meth:`scan` yields, or close to it (for a progress bar): files, non-empty
        JSONL lines, Parquet rows."""
        if self.kind == "text":
            return len(self._files())
        if self.kind == "jsonl":
            return sum(1 for _, raw in _lines(self.location) if raw.strip())
        rows = 0
        for rel in self._files():
            try:
                with _parquet_file(self.location.child(rel)) as parquet:
                    rows += parquet.metadata.num_rows
            except (OSError, ValueError):
                rows += 1  # scan reports it as one error
        return rows

    def scan(self, with_text: bool = True) -> Iterator[SourceDocument | SourceError]:
        """Every document in a stable order, a :class:`SourceError` in place of each unreadable one."""
        if self.kind == "text":
            items = (SourceDocument(rel, None, self.location.child(rel).name, rel) for rel in self._files())
            items = (self._read_text(doc) if with_text else doc for doc in items)
        elif self.kind == "jsonl":
            items = self._scan_jsonl(with_text)
        else:
            items = self._scan_parquet(with_text)
        yield from map(_unicode_checked, items)

    def fetch(self, docs: Sequence[SourceDocument]) -> list[SourceDocument | SourceError]:
        """``docs`` from ``scan(with_text=False)`` with their texts, or the error that reading met."""
        if self.kind == "text":
            return [self._read_text(d) for d in docs]
        out: list[SourceDocument | SourceError | None] = [None] * len(docs)
        by_file: dict[str, list[int]] = {}
        for i, d in enumerate(docs):
            by_file.setdefault(d.file, []).append(i)
        for rel, rows in by_file.items():
            fetch = _fetch_jsonl if self.kind == "jsonl" else _fetch_parquet
            try:
                texts = fetch(self.location.child(rel), [docs[i] for i in rows])
            except (OSError, ValueError, IndexError) as exc:  # unreadable, or changed since the scan
                texts = [SourceError(docs[i].origin, reason(exc)) for i in rows]
            for i, text in zip(rows, texts, strict=True):
                out[i] = text if isinstance(text, SourceError) else replace(docs[i], text=text)
        return [_unicode_checked(item) for item in out]

    # ------------------------------------------------------------------ text files
    def _read_text(self, doc: SourceDocument) -> SourceDocument | SourceError:
        try:
            return replace(doc, text=decode_text(self.location.child(doc.file).read_bytes()))
        except (OSError, UnicodeDecodeError) as exc:
            return SourceError(doc.origin, reason(exc))

    # ------------------------------------------------------------------ JSONL
    def _scan_jsonl(self, with_text: bool) -> Iterator[SourceDocument | SourceError]:
        for n, (offset, raw) in enumerate(_lines(self.location), start=1):
            if not raw.strip():
                continue
            where = f"{self.location.name}:{n}"
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                yield SourceError(where, reason(exc))
                continue
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                yield SourceError(where, 'expected an object with a string "text" field')
                continue
            doc_id = record.get("id", f"line-{n}")
            if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool):
                yield SourceError(where, '"id" must be a string or an integer')
                continue
            yield SourceDocument(str(doc_id), record["text"] if with_text else None, where, "", offset,
                                 len(raw))

    # ------------------------------------------------------------------ Parquet
    def _scan_parquet(self, with_text: bool) -> Iterator[SourceDocument | SourceError]:
        import pyarrow as pa

        for rel in self._files():
            location = self.location.child(rel)
            try:
                parquet = _parquet_file(location)
                has_id = _check_parquet_columns(parquet.schema_arrow)
            except (OSError, ValueError, pa.ArrowException) as exc:
                yield SourceError(location.name, reason(exc))
                continue
            with parquet:
                columns = (["id"] if has_id else []) + (["text"] if with_text else [])
                row = 0
                for group in range(parquet.num_row_groups):
                    size = parquet.metadata.row_group(group).num_rows
                    table = parquet.read_row_group(group, columns=columns) if columns else None
                    ids = table.column("id").to_pylist() if has_id else [None] * size
                    texts = table.column("text").to_pylist() if with_text else [None] * size
                    for doc_id, text in zip(ids, texts, strict=True):
                        where = f"{location.name}:row {row}"
                        if has_id and doc_id is None:
                            yield SourceError(where, '"id" is null')
                        elif with_text and text is None:
                            yield SourceError(where, '"text" is null')
                        else:
                            doc_id = str(doc_id) if has_id else f"{rel}:row-{row}" if rel else f"row-{row}"
                            yield SourceDocument(doc_id, text, where, rel, row)
                        row += 1


def ignored_note(corpus: Corpus) -> str | None:
    """One line on the files of a folder corpus that are not read, by suffix (``None``: none)."""
    ignored = corpus.ignored
    if not ignored:
        return None
    counts: dict[str, int] = {}
    for f in ignored:
        suffix = os.path.splitext(f)[1].lower() or "no suffix"
        counts[suffix] = counts.get(suffix, 0) + 1
    kinds = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    wanted = "/".join(TEXT_SUFFIXES if corpus.kind == "text" else PARQUET_SUFFIXES)
    return (f"{len(ignored)} files of {corpus.location.name} are not read ({kinds}): it is read "
            f"as {wanted} files" + (" (text files come first when a folder has both)"
                                    if corpus.kind == "text" else ""))


def _unicode_checked(item: SourceDocument | SourceError) -> SourceDocument | SourceError:
    """``item``, or an error when its id or text cannot be stored as UTF-8."""
    if isinstance(item, SourceError):
        return item
    for what, value in (("its id (a file name that is not UTF-8?)", item.doc_id), ("its text", item.text)):
        at = None if value is None else lone_surrogate(value)
        if at is not None:
            return SourceError(item.origin, f"{what} holds {value[at]!r} at character {at}, which is "
                                            "not valid Unicode")
    return item


def decode_text(data: bytes) -> str:
    """UTF-8 with universal newlines, as Python reads a text file (offsets refer to this text)."""
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def _lines(location: Location, block: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """``(byte offset, line)`` for each line of a file, the line with its newline."""
    with location.fs.open_input_stream(location.path) as f:
        offset, pending = 0, b""
        while chunk := f.read(block):
            pending += chunk
            *whole, pending = pending.split(b"\n")
            for line in whole:
                yield offset, line + b"\n"
                offset += len(line) + 1
        if pending:
            yield offset, pending


def _fetch_jsonl(location: Location, docs: list[SourceDocument]) -> list[str | SourceError]:
    """The texts of ``docs``' lines: neighbouring lines in one read, far-apart ones on their own."""
    order = sorted(range(len(docs)), key=lambda i: docs[i].position)
    texts: list[str | SourceError | None] = [None] * len(docs)
    with location.fs.open_input_file(location.path) as f:
        start = 0
        while start < len(order):
            end = start + 1  # extend the run while the next line is near
            while end < len(order) and (docs[order[end]].position
                                        - docs[order[end - 1]].position - docs[order[end - 1]].size
                                        <= _SPAN_SLACK):
                end += 1
            first, last = docs[order[start]], docs[order[end - 1]]
            span = f.read_at(last.position + last.size - first.position, first.position)
            for i in order[start:end]:
                d = docs[i]
                raw = span[d.position - first.position : d.position - first.position + d.size]
                try:
                    texts[i] = json.loads(raw.decode("utf-8"))["text"]
                except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
                    texts[i] = SourceError(d.origin, f"changed since it was indexed ({reason(exc)})")
            start = end
    return texts


def _fetch_parquet(location: Location, docs: list[SourceDocument]) -> list[str | SourceError]:
    """The texts of ``docs``' rows, each row group that holds some read once (``text`` only)."""
    texts: list[str | SourceError | None] = [None] * len(docs)
    with _parquet_file(location) as parquet:
        starts = list(itertools.accumulate(
            (parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)), initial=0))
        groups: dict[int, list[int]] = {}
        for i, d in enumerate(docs):
            groups.setdefault(bisect.bisect_right(starts, d.position) - 1, []).append(i)
        for group, members in groups.items():
            column = parquet.read_row_group(group, columns=["text"]).column("text")
            for i in members:
                value = column[docs[i].position - starts[group]].as_py()
                texts[i] = value if value is not None else SourceError(docs[i].origin, '"text" is null')
    return texts


def _parquet_file(location: Location):
    import pyarrow.parquet as pq

    return pq.ParquetFile(location.fs.open_input_file(location.path))


def _check_parquet_columns(schema) -> bool:
    """Whether the table has an ``id`` column; ``ValueError`` unless ``text`` is a string column and
    ``id``, if any, a string or integer one."""
    import pyarrow as pa

    names = schema.names
    if "text" not in names or not (pa.types.is_string(schema.field("text").type)
                                   or pa.types.is_large_string(schema.field("text").type)):
        found = ", ".join(f"{f.name}: {f.type}" for f in schema) or "none"
        raise ValueError(f'expected a string column "text" (columns: {found})')
    if "id" not in names:
        return False
    kind = schema.field("id").type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)):
        raise ValueError(f'the "id" column must hold strings or integers, not {kind}')
    return True

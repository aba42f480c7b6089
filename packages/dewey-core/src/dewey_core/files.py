"""Files on the local disk or on any filesystem pyarrow opens, for ``dewey embed``'s input and output.

A :class:`Location` is a local path (``notes/``, ``/data/corpus.jsonl``) or a URI that
``pyarrow.fs.FileSystem.from_uri`` understands (``s3://bucket/corpus/``, ``gs://...``,
``hdfs://...``, ``file:///...``). Locations pickle, so Ray tasks on other machines open the same
files. Local folders are listed with :mod:`pathlib`, which also lists broken symbolic links (so
they are reported as unreadable instead of silently missing).

Example:
    >>> loc = Location.of("notes")
    >>> loc.child("a/b.txt").name
    'notes/a/b.txt'
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Location:
    """A file or folder: ``fs`` and ``path`` in pyarrow's terms, ``name`` as the user wrote it."""

    fs: object
    """A ``pyarrow.fs.FileSystem``."""
    path: str
    name: str

    @classmethod
    def of(cls, where: str | os.PathLike | Location) -> Location:
        """A local path or a URI; a URI pyarrow cannot parse is a ``ValueError``."""
        if isinstance(where, Location):
            return where
        import pyarrow.fs as pafs

        text = os.fspath(where)
        if "://" not in text:
            return cls(pafs.LocalFileSystem(), os.path.abspath(text), text)
        try:
            fs, path = pafs.FileSystem.from_uri(text)
        except Exception as exc:  # pyarrow raises ArrowInvalid and OSError subclasses
            raise ValueError(f"cannot open {text}: {exc}") from exc
        return cls(fs, path, text)

    @property
    def is_local(self) -> bool:
        import pyarrow.fs as pafs

        return isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.path).suffix.lower()

    def child(self, relative: str) -> Location:
        if not relative:
            return self
        return Location(self.fs, f"{self.path.rstrip('/')}/{relative}",
                        f"{self.name.rstrip('/')}/{relative}" if "://" in self.name
                        else str(Path(self.name) / relative))

    def kind(self) -> str:
        """``"file"``, ``"folder"`` or ``"missing"``."""
        import pyarrow.fs as pafs

        kind = self.fs.get_file_info(self.path).type
        return {pafs.FileType.File: "file", pafs.FileType.Directory: "folder"}.get(kind, "missing")

    def list_files(self, suffixes: tuple[str, ...] | None) -> list[str]:
        """Paths (relative, ``/``-separated, sorted) of the files below this folder, recursively,
        whose suffix is one of ``suffixes`` (``None``: every file)."""
        if self.is_local:
            found = (f for f in _walk(self.path)
                     if suffixes is None or PurePosixPath(f).suffix.lower() in suffixes)
        else:
            import pyarrow.fs as pafs

            base = self.path.rstrip("/") + "/"
            found = (info.path[len(base):] for info in
                     self.fs.get_file_info(pafs.FileSelector(self.path, recursive=True))
                     if info.type == pafs.FileType.File and (suffixes is None or (
                         info.extension and f".{info.extension.lower()}" in suffixes)))
        return sorted(found)

    def has_entries(self) -> bool:
        """Whether this folder holds anything."""
        import pyarrow.fs as pafs

        return bool(self.fs.get_file_info(pafs.FileSelector(self.path)))

    def is_within(self, other: Location) -> bool:
        """Whether this path is ``other`` or below it (same file system; local links resolved)."""
        if type(self.fs) is not type(other.fs):
            return False
        if self.is_local:
            mine, theirs = os.path.realpath(self.path), os.path.realpath(other.path)
        else:
            mine, theirs = self.path.rstrip("/"), other.path.rstrip("/")
        return mine == theirs or mine.startswith(theirs.rstrip("/") + "/")

    def read_bytes(self) -> bytes:
        if self.is_local:
            return Path(self.path).read_bytes()
        with self.fs.open_input_stream(self.path) as f:
            return f.read()

    def write_atomically(self, data: bytes) -> None:
        """Write under a unique temporary name beside the file, then rename it into place (on
        object stores, where a rename is a copy, the object appears whole or not at all)."""
        tmp = self.temporary()
        with self.fs.open_output_stream(tmp.path) as f:
            f.write(data)
        self.fs.move(tmp.path, self.path)

    def temporary(self) -> Location:
        """A unique name beside this file for a write that is renamed into place."""
        suffix = f".{uuid.uuid4().hex[:12]}{TMP_SUFFIX}"
        return Location(self.fs, self.path + suffix, self.name + suffix)

    def make_folder(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def delete(self) -> None:
        self.fs.delete_file(self.path)


def _walk(root: str) -> Iterator[str]:
    """Files (and links, broken ones too: reading them reports why) below ``root``, relative,
    ``/``-separated; linked folders are followed, each real folder once (no loops)."""
    seen = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        rel = os.path.relpath(folder, root)
        for name in files:  # a broken link is listed here
            yield name if rel == "." else f"{Path(rel).as_posix()}/{name}"


TMP_SUFFIX = ".tmp"
"""Names ending so are unfinished writes (see :meth:`Location.temporary`)."""


def reason(exc: Exception) -> str:
    """A short description of why a file could not be read."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc)

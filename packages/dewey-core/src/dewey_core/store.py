"""The output of ``dewey embed`` (either path): Parquet parts, and a manifest that commits them.

OUT is a folder (local, or any URI pyarrow opens) holding

- ``PART.chunks.parquet``: ``doc_id``, ``chunk_index``, ``text``, ``start``, ``end``
  (character offsets into the document) and ``vector`` (float32, L2-normalised);
- ``PART.documents.parquet``: ``doc_id``, ``num_tokens``, ``num_windows``, ``num_chunks`` and
  ``vector`` (the document's global embedding);
- ``manifest.json``: the format, the model and settings, the dimension, and the committed parts
  in order, each with its documents.

A part's two files are written under temporary names and renamed; a part counts only once the
manifest lists it, and only the process that runs the job writes the manifest (replaced
atomically). So a job that dies leaves at worst files that no manifest lists (removed when the
job is run again), and the documents of the listed parts are the ones a rerun skips.

Example:
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> store = EmbeddingStore.open(out, {"model": "all-MiniLM-L6-v2", "chunk_size": 256})
    >>> store.create(dimension=384)
    >>> load_embeddings(out).doc_ids, store.next_name()
    ([], 'part-00000')
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dewey_core.files import TMP_SUFFIX, Location

FORMAT = "dewey-embeddings/1"
MANIFEST = "manifest.json"
KINDS = ("chunks", "documents")
_COMMIT_OVERHEAD = 10
"""Adaptive commits wait at least this many times the last manifest write between writes, so
rewriting a growing manifest costs at most about a tenth of the job's time."""


#: The files a store writes (parts, the manifest, and their unfinished writes); nothing else in
#: OUT is ever deleted.
_OWN_FILE = re.compile(r"(part-(\d{5}|[0-9a-f]{20})\.(chunks|documents)\.parquet|manifest\.json)"
                       r"(\.[0-9a-f]+\.tmp)?")


class SettingsMismatch(ValueError):
    """OUT holds embeddings made with other settings."""


# ---------------------------------------------------------------------- parts
def part_tables(doc_ids: Sequence[str], docs) -> dict[str, object]:
    """The two Arrow tables of a part: ``docs`` are the ``LateChunkedDocument`` of ``doc_ids``."""
    import pyarrow as pa

    if len(doc_ids) != len(docs) or not docs:
        raise ValueError(f"a part needs one result per document, got {len(docs)} for {len(doc_ids)}")
    dim = docs[0].global_embedding.shape[0]
    chunks = [(doc_id, j, c) for doc_id, doc in zip(doc_ids, docs, strict=True)
              for j, c in enumerate(doc.chunks)]
    chunk_vectors = np.stack([c.embedding for *_, c in chunks]) if chunks else np.zeros((0, dim))
    return {
        "chunks": pa.table({
            "doc_id": pa.array([d for d, _, _ in chunks], pa.string()),
            "chunk_index": pa.array([j for _, j, _ in chunks], pa.int32()),
            "text": pa.array([c.text for *_, c in chunks], pa.string()),
            "start": pa.array([c.start for *_, c in chunks], pa.int64()),
            "end": pa.array([c.end for *_, c in chunks], pa.int64()),
            "vector": _vectors(chunk_vectors.reshape(len(chunks), dim)),
        }),
        "documents": pa.table({
            "doc_id": pa.array(list(doc_ids), pa.string()),
            "num_tokens": pa.array([d.num_tokens for d in docs], pa.int64()),
            "num_windows": pa.array([d.num_windows for d in docs], pa.int32()),
            "num_chunks": pa.array([len(d.chunks) for d in docs], pa.int32()),
            "vector": _vectors(np.stack([d.global_embedding for d in docs])),
        }),
    }


def _vectors(matrix: np.ndarray):
    import pyarrow as pa

    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def write_part(out: str | os.PathLike | Location, name: str, doc_ids: Sequence[str], docs) -> int:
    """Write one part's two Parquet files, each under a temporary name then renamed; returns its
    number of chunks. Not committed until the manifest lists it (:meth:`EmbeddingStore.commit`)."""
    import pyarrow.parquet as pq

    out = Location.of(out)
    tables = part_tables(doc_ids, docs)
    for kind, table in tables.items():
        final = out.child(f"{name}.{kind}.parquet")
        tmp = final.temporary()
        pq.write_table(table, tmp.path, filesystem=tmp.fs)
        out.fs.move(tmp.path, final.path)
    return tables["chunks"].num_rows


def content_part_name(doc_ids: Sequence[str]) -> str:
    """A part name that depends only on its documents: a retried batch rewrites its own part."""
    digest = hashlib.sha256("\n".join(doc_ids).encode("utf-8")).hexdigest()
    return f"part-{digest[:20]}"


# ---------------------------------------------------------------------- manifest
def read_manifest(out: str | os.PathLike | Location) -> dict:
    location = Location.of(out).child(MANIFEST)
    try:
        manifest = json.loads(location.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SystemExit(f"dewey: cannot read {location.name}: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise SystemExit(f"dewey: {location.name} is not a dewey embeddings manifest ({FORMAT})")
    return manifest


def write_manifest(out: str | os.PathLike | Location, manifest: dict) -> None:
    Location.of(out).child(MANIFEST).write_atomically(json.dumps(manifest, indent=1).encode("utf-8"))


def has_manifest(out: str | os.PathLike | Location) -> bool:
    return Location.of(out).child(MANIFEST).kind() == "file"


class EmbeddingStore:
    """OUT as a job sees it: the settings check, what is already stored, commits, clean-up.

    ``adaptive_commits`` (for jobs with many parts in flight) writes the manifest at most once
    per ten times its last write's duration; :meth:`flush` writes what is pending. Without it
    every :meth:`commit` writes the manifest at once.
    """

    def __init__(self, location: Location, manifest: dict | None, settings: dict,
                 adaptive_commits: bool = False) -> None:
        self.location = location
        self.manifest = manifest
        self.settings = settings
        self.adaptive_commits = adaptive_commits
        self.done: set[str] = {d for part in (manifest or {}).get("parts", []) for d in part["documents"]}
        self._names = {part["name"] for part in (manifest or {}).get("parts", [])}
        self._dirty = False
        self._last_write = float("-inf")
        self._write_seconds = 0.0

    @classmethod
    def open(cls, out: str | os.PathLike | Location, settings: dict, *,
             adaptive_commits: bool = False, source: Location | None = None) -> EmbeddingStore:
        """OUT, resumed if it holds a manifest; :class:`SettingsMismatch` if that manifest was made
        with other settings. A ``ValueError`` for an OUT that is a file, a folder holding other
        files and no manifest, or inside the ``source`` corpus (a rerun would read the store's
        own files as documents). Nothing is written until :meth:`create`."""
        location = Location.of(out)
        if source is not None and location.is_within(source):
            raise ValueError(f"--out {location.name} is inside the input {source.name}; put the "
                             "embeddings elsewhere")
        kind = location.kind()
        if kind == "file":
            raise ValueError(f"--out {location.name} is a file; give a folder (created if missing)")
        manifest = read_manifest(location) if has_manifest(location) else None
        if manifest is None and kind == "folder" and location.has_entries():
            raise ValueError(f"--out {location.name} holds files but no dewey manifest; give a new or "
                             "empty folder (or one a dewey embed run wrote, to resume it)")
        if manifest is not None and manifest["settings"] != settings:
            changed = sorted(k for k in settings if manifest["settings"].get(k) != settings[k])
            raise SettingsMismatch(f"{location.name} holds embeddings made with other settings "
                                   f"({', '.join(changed)}); use the same options to resume, "
                                   "or another --out")
        return cls(location, manifest, settings, adaptive_commits)

    def create(self, dimension: int) -> None:
        """Create OUT and its manifest unless they exist."""
        if self.manifest is None:
            self.location.make_folder()
            self.manifest = {"format": FORMAT, "settings": self.settings, "dimension": dimension,
                             "parts": []}
            self._write()

    @property
    def stored(self) -> int:
        return len(self.done)

    def next_name(self) -> str:
        """The name for the next part of a job that writes parts one after another."""
        return f"part-{len(self.manifest['parts']):05d}"

    def is_committed(self, name: str) -> bool:
        return name in self._names

    def commit(self, name: str, doc_ids: Sequence[str]) -> None:
        """List a written part in the manifest; its documents count as stored from now on.

        A document may be stored once only: a part that repeats one is refused (``ValueError``).
        """
        repeated = [d for d in doc_ids if d in self.done]
        if name in self._names or repeated or len(set(doc_ids)) != len(doc_ids):
            raise ValueError(f"part {name} repeats stored documents ({repeated[:3] or name}); "
                             "not committed")
        self.manifest["parts"].append({"name": name, "documents": list(doc_ids)})
        self.done.update(doc_ids)
        self._names.add(name)
        self._dirty = True
        wait = _COMMIT_OVERHEAD * self._write_seconds if self.adaptive_commits else 0.0
        if time.monotonic() - self._last_write >= wait:
            self._write()

    def flush(self) -> None:
        if self._dirty:
            self._write()

    def _write(self) -> None:
        start = time.monotonic()
        write_manifest(self.location, self.manifest)
        self._last_write = time.monotonic()
        self._write_seconds = self._last_write - start
        self._dirty = False

    def remove_uncommitted(self) -> list[str]:
        """Delete the part files and temporary files that no committed part owns (left by a job
        that died); returns their names. Only one job may write to OUT at a time."""
        import pyarrow.fs as pafs

        if self.location.kind() != "folder":
            return []
        removed = []
        for info in self.location.fs.get_file_info(pafs.FileSelector(self.location.path)):
            name = info.base_name
            if info.type != pafs.FileType.File or not _OWN_FILE.fullmatch(name):
                continue
            part = name.split(".", 1)[0]
            if name.endswith(TMP_SUFFIX) or (name.endswith(".parquet") and part not in self._names):
                self.location.child(name).delete()
                removed.append(name)
        return sorted(removed)


# ---------------------------------------------------------------------- reading
@dataclass(frozen=True)
class StoredEmbeddings:
    """Everything ``dewey embed`` stored in a folder, parts in order."""

    manifest: dict
    chunk_doc_ids: list[str]
    chunk_index: np.ndarray
    chunk_texts: list[str]
    chunk_offsets: np.ndarray
    """``(n, 2)`` character ``start, end`` per chunk."""
    chunk_vectors: np.ndarray
    doc_ids: list[str]
    doc_vectors: np.ndarray


def load_embeddings(out: str | os.PathLike | Location) -> StoredEmbeddings:
    """Read the parts listed in ``out``'s manifest (files of unfinished parts are ignored)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    location = Location.of(out)
    manifest = read_manifest(location)
    dim = manifest["dimension"]
    names = [p["name"] for p in manifest["parts"]]

    def table(kind: str):
        if not names:
            return None
        return pa.concat_tables([pq.read_table(location.child(f"{n}.{kind}.parquet").path,
                                               filesystem=location.fs) for n in names])

    chunks, docs = table("chunks"), table("documents")

    def matrix(table) -> np.ndarray:
        if table is None or not table.num_rows:
            return np.zeros((0, dim), dtype=np.float32)
        column = table.column("vector").combine_chunks()
        return column.values.to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32)

    def column(table, name):
        return table.column(name).to_pylist() if table is not None else []

    return StoredEmbeddings(manifest, column(chunks, "doc_id"), np.array(column(chunks, "chunk_index")),
                            column(chunks, "text"),
                            np.array(list(zip(column(chunks, "start"), column(chunks, "end"), strict=True)),
                                     dtype=np.int64).reshape(-1, 2),
                            matrix(chunks), column(docs, "doc_id"), matrix(docs))

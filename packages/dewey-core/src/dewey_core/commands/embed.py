"""``dewey embed INPUT --out OUT``: late-chunk a corpus into Parquet, resumably.

INPUT is a folder of ``.txt``/``.md`` files (read recursively; a document's id is its path
relative to the folder) or a JSONL file (one object per line with ``text`` and an optional
``id``; without one the id is ``line-N``). OUT is a folder:

- ``part-NNNNN.chunks.parquet``: ``doc_id``, ``chunk_index``, ``text``, ``start``, ``end``
  (character offsets into the document) and ``vector`` (float32, L2-normalised);
- ``part-NNNNN.documents.parquet``: ``doc_id``, ``num_tokens``, ``num_windows``,
  ``num_chunks`` and ``vector`` (the document's global embedding);
- ``manifest.json``: the model and settings, and the parts written with their documents.

Each batch of documents becomes one part: its files are written under temporary names and
renamed, then the manifest is replaced atomically. Only parts listed in the manifest count, so
an interrupted run leaves nothing half-written, and running the command again skips the
documents already stored. Files that cannot be read (or JSONL lines that are not documents)
are named on stderr and skipped; the command goes on and exits with status 1 at the end.

Example:
    dewey embed notes/ --out notes.dewey --model infgrad/dewey_en_beta --chunk-size 256
    dewey search notes.dewey "What does Ardenvale export?"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "infgrad/dewey_en_beta"
TEXT_SUFFIXES = (".txt", ".md", ".markdown")
MANIFEST = "manifest.json"
FORMAT = "dewey-embeddings/1"


@dataclass(frozen=True)
class SourceDocument:
    doc_id: str
    text: str
    origin: str
    """Where it was read: the file, or ``file.jsonl:line``."""


@dataclass(frozen=True)
class SourceError:
    origin: str
    reason: str


def add_model_options(parser: argparse.ArgumentParser, default: str | None = DEFAULT_MODEL) -> None:
    parser.add_argument("--model", default=default,
                        help=f"model id or local path (default: {default or 'the one stored in OUT'})")
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: CUDA when available)")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16, ... (default: per device)")


def load_encoder(args: argparse.Namespace, model: str):
    from dewey_core import DeweyEncoder

    return DeweyEncoder.from_pretrained(model, device=args.device, dtype=args.dtype,
                                        max_length=getattr(args, "max_length", None))


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help="late-chunk a folder or JSONL corpus into Parquet (resumable)",
                              description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="folder of .txt/.md files, or a .jsonl file")
    p.add_argument("--out", type=Path, required=True, help="output folder (created; resumed if present)")
    add_model_options(p)
    p.add_argument("--chunk-size", type=int, default=256, help="tokens per chunk (default 256)")
    p.add_argument("--chunk-overlap", type=int, default=0, help="tokens shared by neighbouring chunks")
    p.add_argument("--dim", type=int, default=None, help="output dimension (Matryoshka / head size)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per model window")
    p.add_argument("--context-tokens", type=int, default=None,
                   help="opening tokens carried into later windows (default: min(window/8, 64))")
    p.add_argument("--window-overlap", type=int, default=None,
                   help="tokens before each later window's new ones, outputs discarded "
                        "(default: min(window/16, 32))")
    p.add_argument("--batch-docs", type=int, default=64,
                   help="documents per part file; a part is the unit of resumption (default 64)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _settings(args: argparse.Namespace) -> dict:
    return {"model": args.model, "chunk_size": args.chunk_size, "chunk_overlap": args.chunk_overlap,
            "dim": args.dim, "max_length": args.max_length, "context_tokens": args.context_tokens,
            "window_overlap": args.window_overlap}


def run(args: argparse.Namespace) -> int:
    if args.batch_docs < 1:
        return _fail(f"--batch-docs must be at least 1, got {args.batch_docs}")
    if not args.input.exists():
        return _fail(f"input not found: {args.input}")
    if not (args.input.is_dir() or args.input.suffix == ".jsonl"):
        return _fail(f"input must be a folder or a .jsonl file: {args.input}")
    manifest = read_manifest(args.out) if (args.out / MANIFEST).exists() else None
    settings = _settings(args)
    if manifest is not None and manifest["settings"] != settings:
        changed = sorted(k for k in settings if manifest["settings"].get(k) != settings[k])
        return _fail(f"{args.out} holds embeddings made with other settings ({', '.join(changed)}); "
                     "use the same options to resume, or another --out")
    done = {doc for part in (manifest or {}).get("parts", []) for doc in part["documents"]}
    # The model and every option are checked (late_chunk of no documents) before anything is written.
    try:
        encoder = load_encoder(args, args.model)
        _late_chunk(args, encoder, [])
    except (OSError, ValueError, TypeError) as exc:
        return _fail(str(exc))

    from tqdm.auto import tqdm

    args.out.mkdir(parents=True, exist_ok=True)
    if manifest is None:
        manifest = {"format": FORMAT, "settings": settings, "dimension": args.dim or encoder.dimension,
                    "parts": []}
        write_manifest(args.out, manifest)
    failures: list[SourceError] = []
    seen: set[str] = set()
    batch: list[SourceDocument] = []
    written = {"documents": 0, "chunks": 0}
    total = _count_inputs(args.input)
    with tqdm(total=total, desc="Embedding", unit="doc", disable=args.quiet) as bar:
        for item in iter_documents(args.input):
            if isinstance(item, SourceDocument) and item.doc_id in seen:
                item = SourceError(item.origin, f"duplicate document id {item.doc_id!r}; only the "
                                                "first is kept")
            if isinstance(item, SourceError):
                failures.append(item)
                bar.write(f"dewey embed: cannot read {item.origin}: {item.reason}", file=sys.stderr)
                bar.update(1)
                continue
            seen.add(item.doc_id)
            if item.doc_id in done:
                bar.update(1)
                continue
            batch.append(item)
            if len(batch) == args.batch_docs:
                _store(args, encoder, manifest, batch, written)
                bar.update(len(batch))
                batch = []
        if batch:
            _store(args, encoder, manifest, batch, written)
            bar.update(len(batch))
    stored = sum(len(p["documents"]) for p in manifest["parts"])
    print(f"dewey embed: {written['documents']} documents ({written['chunks']} chunks) embedded now, "
          f"{stored} stored in {args.out}" + (f", {len(failures)} skipped:" if failures else ""),
          file=sys.stderr)
    for failure in failures:
        print(f"  {failure.origin}: {failure.reason}", file=sys.stderr)
    return 1 if failures else 0


def _fail(message: str) -> int:
    print(f"dewey embed: error: {message}", file=sys.stderr)
    return 2


# ---------------------------------------------------------------------- reading the input
def _text_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES
                  and (p.is_file() or p.is_symlink()))


def _count_inputs(path: Path) -> int:
    if path.is_dir():
        return len(_text_files(path))
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def iter_documents(path: Path) -> Iterator[SourceDocument | SourceError]:
    """Documents of a folder or JSONL file, in a stable order, with an error for each unreadable one."""
    if path.is_dir():
        for file in _text_files(path):
            doc_id = file.relative_to(path).as_posix()
            try:
                yield SourceDocument(doc_id, file.read_text(encoding="utf-8"), str(file))
            except (OSError, UnicodeDecodeError) as exc:
                yield SourceError(str(file), _reason(exc))
        return
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{n}"
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                yield SourceError(where, _reason(exc))
                continue
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                yield SourceError(where, 'expected an object with a string "text" field')
                continue
            doc_id = record.get("id", f"line-{n}")
            if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool):
                yield SourceError(where, '"id" must be a string or an integer')
                continue
            yield SourceDocument(str(doc_id), record["text"], where)


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)


# ---------------------------------------------------------------------- writing parts
def _late_chunk(args, encoder, texts: list[str]):
    return encoder.late_chunk(texts, chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap,
                              dim=args.dim, context_tokens=args.context_tokens,
                              window_overlap=args.window_overlap, show_progress=False)


def _store(args, encoder, manifest: dict, batch: list[SourceDocument], written: dict) -> None:
    docs = _late_chunk(args, encoder, [d.text for d in batch])
    name = f"part-{len(manifest['parts']):05d}"
    write_part(args.out, name, batch, docs)
    manifest["parts"].append({"name": name, "documents": [d.doc_id for d in batch]})
    write_manifest(args.out, manifest)
    written["documents"] += len(batch)
    written["chunks"] += sum(len(d.chunks) for d in docs)


def _vectors(matrix: np.ndarray):
    import pyarrow as pa

    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def write_part(out: Path, name: str, batch: list[SourceDocument], docs) -> None:
    """Write one part's two Parquet files, each under a temporary name then renamed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dim = docs[0].global_embedding.shape[0]
    chunks = [(src.doc_id, j, c) for src, doc in zip(batch, docs, strict=True)
              for j, c in enumerate(doc.chunks)]
    chunk_vectors = np.stack([c.embedding for *_, c in chunks]) if chunks else np.zeros((0, dim))
    tables = {
        "chunks": pa.table({
            "doc_id": pa.array([d for d, _, _ in chunks], pa.string()),
            "chunk_index": pa.array([j for _, j, _ in chunks], pa.int32()),
            "text": pa.array([c.text for *_, c in chunks], pa.string()),
            "start": pa.array([c.start for *_, c in chunks], pa.int64()),
            "end": pa.array([c.end for *_, c in chunks], pa.int64()),
            "vector": _vectors(chunk_vectors.reshape(len(chunks), dim)),
        }),
        "documents": pa.table({
            "doc_id": pa.array([s.doc_id for s in batch], pa.string()),
            "num_tokens": pa.array([d.num_tokens for d in docs], pa.int64()),
            "num_windows": pa.array([d.num_windows for d in docs], pa.int32()),
            "num_chunks": pa.array([len(d.chunks) for d in docs], pa.int32()),
            "vector": _vectors(np.stack([d.global_embedding for d in docs])),
        }),
    }
    for kind, table in tables.items():
        final = out / f"{name}.{kind}.parquet"
        tmp = final.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, final)


def read_manifest(out: Path) -> dict:
    path = Path(out) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"dewey: cannot read {path}: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise SystemExit(f"dewey: {path} is not a dewey embeddings manifest ({FORMAT})")
    return manifest


def write_manifest(out: Path, manifest: dict) -> None:
    path = Path(out) / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, path)


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


def load_embeddings(out: str | os.PathLike) -> StoredEmbeddings:
    """Read the parts listed in ``out``'s manifest (files of unfinished parts are ignored)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    manifest = read_manifest(out)
    dim = manifest["dimension"]
    names = [p["name"] for p in manifest["parts"]]
    chunks = pa.concat_tables([pq.read_table(out / f"{n}.chunks.parquet") for n in names]) if names else None
    docs = pa.concat_tables([pq.read_table(out / f"{n}.documents.parquet") for n in names]) if names else None

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

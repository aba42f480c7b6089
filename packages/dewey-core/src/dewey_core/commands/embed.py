"""``dewey embed INPUT --out OUT``: late-chunk a corpus into Parquet, resumably.

INPUT is a folder of ``.txt``/``.md`` files (read recursively; a document's id is its path
relative to the folder), a JSONL file (one object per line with ``text`` and an optional
``id``; without one the id is ``line-N``) or Parquet (a ``.parquet`` file or a folder of them,
with a ``text`` column and an optional ``id`` column; without one the id is ``row-N``); a local
path or a URI pyarrow opens (``s3://``, ``gs://``, ``hdfs://``). OUT is a folder of Parquet
parts and a ``manifest.json`` (see :mod:`dewey_core.store`), local or a URI.

Each batch of documents becomes one part: its files are written under temporary names and
renamed, then the manifest is replaced atomically. Only parts listed in the manifest count, so
an interrupted run leaves nothing half-written, and running the command again skips the
documents already stored. Files that cannot be read (or JSONL lines that are not documents)
are named on stderr and skipped; the command goes on and exits with status 1 at the end.

``--ray`` runs the same job on a Ray cluster (``--ray-address``; a local one without it) with
``--workers`` model replicas, each with ``--gpus-per-worker`` GPUs; the output is the same (see
:mod:`dewey_core.distributed`).

Example:
    dewey embed notes/ --out notes.dewey --model infgrad/dewey_en_beta --chunk-size 256
    dewey embed s3://corpora/wiki/ --out s3://corpora/wiki.dewey --ray --ray-address auto \\
        --workers 8 --gpus-per-worker 1
    dewey search notes.dewey "What does Ardenvale export?"
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from dewey_core.corpus import Corpus, ignored_note
from dewey_core.embed_job import (
    DEFAULT_MODEL,
    DONE,
    FAILED,
    EmbedOptions,
    EmbedReport,
    cannot_read,
    classify,
)
from dewey_core.store import EmbeddingStore, load_embeddings, write_part

__all__ = ["add_model_options", "add_parser", "load_embeddings", "load_encoder", "run"]

RAY_DEFAULTS = {"ray_address": None, "workers": 1, "gpus_per_worker": 0.0, "cpus_per_worker": 1.0}


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
    p = subparsers.add_parser(name, help="late-chunk a folder, JSONL or Parquet corpus into Parquet "
                                         "(resumable; --ray for a cluster)",
                              description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="folder of .txt/.md files, a .jsonl file, or a .parquet file or "
                                 "folder; a local path or a URI (s3://, gs://, hdfs://, file://)")
    p.add_argument("--out", required=True, help="output folder or URI (created; resumed if present)")
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
    ray = p.add_argument_group("cluster (Ray Data; pip install 'dewey-core[ray]')")
    ray.add_argument("--ray", action="store_true", help="run on Ray: a local one, or --ray-address")
    ray.add_argument("--ray-address", default=None,
                     help="join this running cluster (host:port, or auto for the one on this machine)")
    ray.add_argument("--workers", type=int, default=1, help="model replicas (Ray actors; default 1)")
    ray.add_argument("--gpus-per-worker", type=float, default=0.0,
                     help="GPUs per replica; fractions share a GPU (default 0: CPU)")
    ray.add_argument("--cpus-per-worker", type=float, default=1.0,
                     help="CPUs per replica, also its torch threads on CPU (default 1)")
    return p


def _options(args: argparse.Namespace) -> EmbedOptions:
    return EmbedOptions(model=args.model, chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap,
                        dim=args.dim, max_length=args.max_length, context_tokens=args.context_tokens,
                        window_overlap=args.window_overlap, device=args.device, dtype=args.dtype)


def run(args: argparse.Namespace) -> int:
    if args.batch_docs < 1:
        return _fail(f"--batch-docs must be at least 1, got {args.batch_docs}")
    if args.ray:
        return _run_on_ray(args)
    misplaced = [f"--{k.replace('_', '-')}" for k, v in RAY_DEFAULTS.items() if getattr(args, k) != v]
    if misplaced:
        return _fail(f"{', '.join(misplaced)} only apply with --ray")
    options = _options(args)
    try:
        corpus = Corpus.open(args.input)
        store = EmbeddingStore.open(args.out, options.settings(), source=corpus.location)
        # The model and every option are checked before anything is written.
        encoder, dimension = options.check()
        store.create(dimension)
        store.remove_uncommitted()
    except (OSError, ValueError, TypeError) as exc:
        return _fail(str(exc))

    from tqdm.auto import tqdm

    note = ignored_note(corpus)
    if note:
        print(f"dewey embed: note: {note}", file=sys.stderr)
    report = EmbedReport(str(args.out))
    batch = []
    with tqdm(total=corpus.count(), desc="Embedding", unit="doc", disable=args.quiet) as bar:
        for status, item in classify(corpus.scan(), frozenset(store.done)):
            if status == FAILED:
                report.failures.append(item)
                bar.write(cannot_read(item), file=sys.stderr)
                bar.update(1)
            elif status == DONE:
                bar.update(1)
            else:
                batch.append(item)
                if len(batch) == args.batch_docs:
                    _store(options, encoder, store, batch, report)
                    bar.update(len(batch))
                    batch = []
        if batch:
            _store(options, encoder, store, batch, report)
            bar.update(len(batch))
    report.stored = store.stored
    print(report.summary(), file=sys.stderr)
    return report.exit_code


def _store(options: EmbedOptions, encoder, store: EmbeddingStore, batch: list, report: EmbedReport) -> None:
    docs = options.late_chunk(encoder, [d.text for d in batch])
    name = store.next_name()
    doc_ids = [d.doc_id for d in batch]
    report.chunks += write_part(store.location, name, doc_ids, docs)
    store.commit(name, doc_ids)
    report.embedded += len(batch)


def _run_on_ray(args: argparse.Namespace) -> int:
    try:
        from dewey_core.distributed import embed_dataset

        report = embed_dataset(args.input, args.out, **asdict(_options(args)), batch_docs=args.batch_docs,
                               **{k: getattr(args, k) for k in RAY_DEFAULTS}, progress=not args.quiet)
    except ImportError as exc:
        return _fail(f"--ray needs Ray Data ({exc}); install it with: pip install 'dewey-core[ray]'")
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        return _fail(str(exc))
    print(report.summary(), file=sys.stderr)
    return report.exit_code


def _fail(message: str) -> int:
    print(f"dewey embed: error: {message}", file=sys.stderr)
    return 2


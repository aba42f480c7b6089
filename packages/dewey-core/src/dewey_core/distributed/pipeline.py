"""How ``dewey embed --ray`` splits the work, and why each document is stored exactly once.

The driver (the process that calls :func:`embed_dataset`):

1. opens INPUT and OUT as the single-machine command does (same settings check, same manifest),
   loads the model and checks every option on it (in its own process for a local Ray, in a
   task with a worker's resources on a cluster), and removes part files that no committed
   part owns (left by a run that died);
2. indexes the input in order (a folder's file list, each JSONL line's id and byte range, a
   Parquet file's ``id`` column), so repeated ids, unreadable lines and the documents already
   in OUT are settled as one process settles them, without holding any text;
3. runs a Ray Data pipeline over the remaining documents in blocks of ``batch_docs``: read tasks
   fetch the texts in parallel (from any filesystem pyarrow opens) -> an actor pool of
   ``workers`` late-chunkers, each loading the model once and holding ``gpus_per_worker`` GPUs
   through Ray's resources, embeds each batch and writes it as one part named by a hash of its
   documents, then returns the part's name and documents;
4. commits each part it receives in the manifest. Only the driver writes the manifest.

Exactly once: a document is stored when a committed part lists it, and a commit that would list
a document twice is refused. An actor that dies is restarted by Ray and its batch retried; the
retry writes the same part name (same documents), so the dead attempt's files are overwritten,
not duplicated, and a part delivered twice is committed once. If the driver dies, the parts it
had not committed are removed by the next run, which embeds their documents again.

The manifest is rewritten at most once per ten times its last write took, so a manifest of
millions of documents costs little; a driver killed outright loses at most the parts received
since its last write, which the next run redoes.

Fault injection, for tests: with ``DEWEY_RAY_EXIT_ONCE=<path>`` in the driver's environment,
the first actor to finish a batch writes its part, creates ``<path>`` and ends its process
before returning the part: a worker lost mid-run.
"""

from __future__ import annotations

import logging
import numbers
import os
import sys
from dataclasses import replace

from dewey_core.corpus import Corpus, SourceDocument, SourceError, ignored_note
from dewey_core.embed_job import (
    DEFAULT_MODEL,
    FAILED,
    NEW,
    EmbedOptions,
    EmbedReport,
    cannot_read,
    classify,
)
from dewey_core.files import Location
from dewey_core.inputs import check_int
from dewey_core.store import EmbeddingStore, content_part_name, write_part

EXIT_ONCE_ENV = "DEWEY_RAY_EXIT_ONCE"


def embed_dataset(input: str | os.PathLike, out: str | os.PathLike, *, model: str = DEFAULT_MODEL,
                  chunk_size: int = 256, chunk_overlap: int = 0, dim: int | None = None,
                  max_length: int | None = None, context_tokens: int | None = None,
                  window_overlap: int | None = None, device: str | None = None, dtype: str | None = None,
                  batch_docs: int = 64, workers: int = 1, gpus_per_worker: float = 0.0,
                  cpus_per_worker: float = 1.0, ray_address: str | None = None,
                  progress: bool = True) -> EmbedReport:
    """Late-chunk INPUT into OUT on Ray, as ``dewey embed INPUT --out OUT`` does in one process.

    The options before ``batch_docs`` are those of :meth:`DeweyEncoder.late_chunk` and
    :meth:`DeweyEncoder.from_pretrained` (``device`` defaults to ``cuda`` with GPUs per worker,
    else ``cpu``). ``workers`` model replicas run as Ray actors, each with ``gpus_per_worker``
    GPUs (a fraction shares a GPU) and ``cpus_per_worker`` CPUs (its torch threads on CPU).
    Without ``ray_address`` a local Ray is started (and stopped), unless this process is already
    connected to one; ``"auto"`` or ``host:port`` joins a running cluster, whose every node must
    have dewey-core and the model, and see INPUT and OUT (shared storage or object store URIs).

    Unreadable inputs are printed to stderr as they are met and listed in the report; the rest
    goes on. Raises ``FileNotFoundError``/``ValueError`` before writing anything for a missing
    input, bad options or other settings in OUT, and ``RuntimeError`` if the Ray job fails (what
    was committed stays; running again resumes).

    Example:
        >>> report = embed_dataset("notes/", "notes.dewey", workers=4,
        ...                        gpus_per_worker=1, ray_address="auto")  # doctest: +SKIP
        >>> report.embedded, report.failures                               # doctest: +SKIP
        (1200, [])
    """
    options = EmbedOptions(model=model, chunk_size=chunk_size, chunk_overlap=chunk_overlap, dim=dim,
                           max_length=max_length, context_tokens=context_tokens,
                           window_overlap=window_overlap, device=device, dtype=dtype)
    _check_sizes(batch_docs=batch_docs, workers=workers, gpus_per_worker=gpus_per_worker,
                 cpus_per_worker=cpus_per_worker)
    if options.device is None:
        options = replace(options, device="cuda" if gpus_per_worker > 0 else "cpu")
    corpus = Corpus.open(input)
    store = EmbeddingStore.open(out, options.settings(), adaptive_commits=True, source=corpus.location)

    import ray

    # The model and every option are checked before anything is written: here for a local Ray
    # (the same machine; no extra process), where the workers run on a cluster.
    dimension = None if ray_address else _checked(_check_options(replace(options, device="cpu")))
    started = _connect(ray_address)
    try:
        _check_cluster(gpus_per_worker, cpus_per_worker, local=started and ray_address is None)
        if dimension is None:
            task = ray.remote(_check_options).options(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)
            dimension = _checked(ray.get(task.remote(options)))
        store.create(dimension)
        store.remove_uncommitted()
        note = ignored_note(corpus)
        if note:
            print(f"dewey embed: note: {note}", file=sys.stderr)
        report = EmbedReport(str(out))
        entries = _index(corpus, store, report)
        if entries:
            _run_pipeline(corpus, store, report, entries, options, batch_docs=batch_docs,
                          workers=workers, gpus_per_worker=gpus_per_worker,
                          cpus_per_worker=cpus_per_worker, progress=progress)
        store.remove_uncommitted()  # files of batches whose actor died before they were renamed
        report.stored = store.stored
        return report
    finally:
        store.flush()
        if started:
            ray.shutdown()


def _check_sizes(*, batch_docs: int, workers: int, gpus_per_worker: float, cpus_per_worker: float) -> None:
    for name, value in (("batch_docs", batch_docs), ("workers", workers)):
        if check_int(value, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    for name, value, least in (("gpus_per_worker", gpus_per_worker, "at least 0"),
                               ("cpus_per_worker", cpus_per_worker, "more than 0")):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or value < 0 or (value == 0 and name == "cpus_per_worker"):
            raise ValueError(f"{name} must be a number {least}, got {value!r}")


def _connect(address: str | None) -> bool:
    """Connect to Ray; True if this call did (and the caller disconnects at the end)."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(include_dashboard=False, logging_level=logging.WARNING)
    return True


def _check_cluster(gpus: float, cpus: float, local: bool) -> None:
    """A worker that fits nowhere would wait forever: refuse on a local Ray, warn on a cluster
    (an autoscaler may still add the nodes)."""
    import ray

    have = ray.cluster_resources()
    missing = [f"{need:g} {kind} per worker, the cluster has {have.get(kind, 0):g}"
               for kind, need in (("GPU", gpus), ("CPU", cpus)) if need > have.get(kind, 0)]
    if not missing:
        return
    message = f"no node can run a worker: {'; '.join(missing)}"
    if local:
        raise ValueError(message)
    print(f"dewey embed: warning: {message} (waiting for the cluster to grow)", file=sys.stderr)


def _check_options(options: EmbedOptions) -> tuple[int | None, str | None]:
    try:
        return options.check()[1], None
    except (OSError, ValueError, TypeError) as exc:
        return None, str(exc)


def _checked(result: tuple[int | None, str | None]) -> int:
    dimension, problem = result
    if problem is not None:
        raise ValueError(problem)
    return dimension


def _index(corpus: Corpus, store: EmbeddingStore, report: EmbedReport) -> list[SourceDocument]:
    """The documents to embed, in input order, as locators without texts; unreadable items go to
    the report and stderr as they are met."""
    todo = []
    for status, item in classify(corpus.scan(with_text=False), frozenset(store.done)):
        if status == FAILED:
            _report_failure(report, item)
        elif status == NEW:
            todo.append(item)
    return todo


def _blocks(entries: list[SourceDocument], size: int) -> list:
    """Arrow tables of ``size`` index entries each: the pipeline's input blocks."""
    import pyarrow as pa

    schema = pa.schema([("doc_id", pa.string()), ("origin", pa.string()), ("file", pa.string()),
                        ("position", pa.int64()), ("size", pa.int64())])
    return [pa.table({name: [getattr(d, name) for d in entries[start:start + size]] for name in schema.names},
                     schema=schema)
            for start in range(0, len(entries), size)]


def _report_failure(report: EmbedReport, error: SourceError) -> None:
    report.failures.append(error)
    print(cannot_read(error), file=sys.stderr, flush=True)


def _run_pipeline(corpus: Corpus, store: EmbeddingStore, report: EmbedReport, entries: list[SourceDocument],
                  options: EmbedOptions,
                  *, batch_docs: int, workers: int, gpus_per_worker: float, cpus_per_worker: float,
                  progress: bool) -> None:
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()
    bars, context.enable_progress_bars = context.enable_progress_bars, progress
    texts = ray.data.from_arrow(_blocks(entries, batch_docs)).map_batches(
        _read_texts, fn_kwargs={"corpus": corpus}, batch_size=None, batch_format="pyarrow",
        # Reading waits on storage, not CPUs, and must not wait for the CPUs the workers hold;
        # as many readers as workers keep them fed (reading is much faster than embedding).
        num_cpus=0, compute=ray.data.TaskPoolStrategy(size=workers))
    parts = texts.map_batches(
        _LateChunker, batch_size=batch_docs, batch_format="pyarrow",
        fn_constructor_kwargs={"options": options, "out": store.location,
                               "threads": max(1, int(cpus_per_worker)),
                               "exit_once": os.environ.get(EXIT_ONCE_ENV)},
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker)
    reported = {f.origin for f in report.failures}
    try:
        for batch in parts.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in batch.to_pylist():
                for origin, reason in zip(row["failed_origins"], row["failed_reasons"], strict=True):
                    if origin not in reported:  # a retried batch reports its failures again
                        reported.add(origin)
                        _report_failure(report, SourceError(origin, reason))
                if row["part"] is None or store.is_committed(row["part"]):
                    continue  # no readable document, or a retried batch's part delivered again
                store.commit(row["part"], row["documents"])
                report.embedded += len(row["documents"])
                report.chunks += row["chunks"]
    except ray.exceptions.RayError as exc:
        store.flush()
        cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise RuntimeError(f"the Ray job failed: {cause}; {store.stored} documents are stored in "
                           f"{store.location.name}, and running the same command again resumes") from exc
    finally:
        context.enable_progress_bars = bars


def _read_texts(block, corpus: Corpus):
    """Read task: index entries -> ``doc_id, origin, text, error`` (one of the last two is null)."""
    import pyarrow as pa

    docs = [SourceDocument(r["doc_id"], None, r["origin"], r["file"], r["position"], r["size"])
            for r in block.to_pylist()]
    read = corpus.fetch(docs)
    return pa.table({
        "doc_id": pa.array([d.doc_id for d in docs], pa.string()),
        "origin": pa.array([d.origin for d in docs], pa.string()),
        "text": pa.array([r.text if isinstance(r, SourceDocument) else None for r in read], pa.string()),
        "error": pa.array([r.reason if isinstance(r, SourceError) else None for r in read], pa.string()),
    })


class _LateChunker:
    """An actor of the pool: loads the model once, then embeds each batch into one part."""

    def __init__(self, options: EmbedOptions, out: Location, threads: int, exit_once: str | None) -> None:
        if options.device == "cpu":
            import torch

            torch.set_num_threads(threads)
        self.options, self.out, self.exit_once = options, out, exit_once
        self.encoder = options.load_encoder()

    def __call__(self, batch):
        import pyarrow as pa

        rows = batch.to_pylist()
        good = [r for r in rows if r["error"] is None]
        failed = [r for r in rows if r["error"] is not None]
        name, chunks, doc_ids = None, 0, [r["doc_id"] for r in good]
        if good:
            docs = self.options.late_chunk(self.encoder, [r["text"] for r in good])
            name = content_part_name(doc_ids)
            chunks = write_part(self.out, name, doc_ids, docs)
        if self.exit_once and _first_to_claim(self.exit_once):
            os._exit(1)  # fault injection: the part is written, the batch not returned
        return pa.table({
            "part": pa.array([name], pa.string()),
            "documents": pa.array([doc_ids], pa.list_(pa.string())),
            "chunks": pa.array([chunks], pa.int64()),
            "failed_origins": pa.array([[r["origin"] for r in failed]], pa.list_(pa.string())),
            "failed_reasons": pa.array([[r["error"] for r in failed]], pa.list_(pa.string())),
        })


def _first_to_claim(path: str) -> bool:
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True

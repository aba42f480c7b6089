"""``dewey bench --parts ray``: what ``dewey embed --ray`` costs against ``dewey embed``.

One run, one corpus (mixed-length passages cut from CPython's pydoc topics, written as a folder
of text files), one local Ray started once (on a cluster it is already up). Each method runs the
whole job into a fresh OUT, in interleaved rounds; the median counts:

- ``dewey embed``: the single-machine command in this process (the model loaded afresh each
  round, as a new command would);
- ``dewey embed --ray`` with each number of workers, the machine's CPUs split between them
  (each worker's torch threads = its CPUs).

Each method also runs the same job on one short document: its *start-up* (loading the model;
for Ray also starting the actors and their processes). ``after start-up`` documents/s divides
the documents by the job's time less that start-up: the rate a long job approaches.

Example (small):
    >>> from dewey_core.distributed.bench import JobTiming
    >>> t = JobTiming("dewey embed", (10.0, 12.0), startup_seconds=2.0, documents=100, tokens=50_000)
    >>> round(t.documents_per_second, 2), round(t.steady_documents_per_second, 2)
    (9.09, 11.11)
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

SINGLE = "dewey embed (one process)"
SHORT_DOCUMENT = "The tide rises twice a day. The moon pulls the water towards it."


@dataclass(frozen=True)
class JobTiming:
    """Wall times of one way of running the whole job on the same corpus."""

    method: str
    seconds: tuple[float, ...]
    """The whole job, one per round."""
    startup_seconds: float
    """The same job on one short document."""
    documents: int
    tokens: int
    """Content tokens of the corpus (as stored by the job)."""

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def documents_per_second(self) -> float:
        return self.documents / self.median_seconds

    @property
    def steady_documents_per_second(self) -> float:
        return self.documents / max(self.median_seconds - self.startup_seconds, 1e-9)


@dataclass
class RayBench:
    settings: dict
    timings: list[JobTiming] = field(default_factory=list)

    def ratio(self, method: str, baseline: str = SINGLE) -> float:
        """Documents/s of ``method`` over ``baseline`` (> 1: ``method`` is faster)."""
        by_name = {t.method: t for t in self.timings}
        return by_name[baseline].median_seconds / by_name[method].median_seconds

    def to_dict(self) -> dict:
        return {"settings": self.settings, "timings": [
            {**asdict(t), "median_seconds": t.median_seconds, "documents_per_second": t.documents_per_second,
             "steady_documents_per_second": t.steady_documents_per_second} for t in self.timings]}

    def markdown(self) -> str:
        s = self.settings
        first = self.timings[0]
        lines = ["## dewey embed --ray against dewey embed", "",
                 f"Model {s['model']}, {s['cpus']} CPUs (load average {s.get('load_average')} at the end), "
                 f"torch {s['torch']}, ray {s['ray']}; {s['date']}. "
                 f"Corpus: {first.documents} documents ({first.tokens:,} tokens; pydoc passages of "
                 f"{s['min_words']}-{s['max_words']} words), chunk_size {s['chunk_size']}, "
                 f"{s['batch_docs']} documents per part. Reproduce: `{s['command']}`.",
                 f"Median of {s['rounds']} interleaved rounds; local Ray started once beforehand "
                 f"({s['ray_init_seconds']:.1f} s, not counted). Start-up: the same job on one short "
                 "document.", "",
                 "| method | job s | documents/s | vs dewey embed | start-up s "
                 "| documents/s after start-up |",
                 "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {t.method} | {t.median_seconds:.1f} | {t.documents_per_second:.2f} | "
                  f"{self.ratio(t.method):.2f}x | {t.startup_seconds:.1f} | "
                  f"{t.steady_documents_per_second:.2f} |" for t in self.timings]
        return "\n".join(lines) + "\n"


def bench_ray(model: str, *, documents: int = 128, min_words: int = 200, max_words: int = 2000,
              chunk_size: int = 128, batch_docs: int = 16, workers: Sequence[int] = (1, 2),
              rounds: int = 3, device: str | None = None, dtype: str | None = None,
              model_name: str | None = None, command: str = "dewey bench --parts ray",
              say: Callable[[str], None] = print) -> RayBench:
    """Time ``dewey embed`` and ``dewey embed --ray`` (each number of ``workers``) on one corpus,
    on a local Ray with this machine's CPUs (or the Ray this process is connected to)."""
    import ray
    import torch

    from dewey_core import bench

    if rounds < 1 or documents < 1 or not workers:
        raise ValueError("need rounds >= 1, documents >= 1 and at least one number of workers")
    cpus = os.cpu_count() or 1
    texts = bench.mixed_passages(documents, min_words=min_words, max_words=max_words)
    options = {"model": model, "chunk_size": chunk_size, "device": device, "dtype": dtype}
    with tempfile.TemporaryDirectory(prefix="dewey-ray-bench-") as tmp:
        root = Path(tmp)
        corpus, short = _folder(root / "corpus", texts), _folder(root / "short", [SHORT_DOCUMENT])
        started = time.perf_counter()
        own_ray = not ray.is_initialized()
        if own_ray:
            ray.init(num_cpus=cpus, object_store_memory=1 << 30, include_dashboard=False,
                     logging_level=logging.WARNING)
        cpus = int(ray.cluster_resources().get("CPU", cpus))
        ray_init = time.perf_counter() - started
        try:
            jobs = {SINGLE: _single(options, batch_docs)}
            for n in workers:
                share = cpus / n
                jobs[f"dewey embed --ray, {n} worker{'s' * (n > 1)} x {share:g} CPU{'s' * (share != 1)}"] = \
                    _on_ray(options, batch_docs, n, share)
            runs = iter(range(10**9))

            def timed(name: str, source: Path, expected: int) -> tuple[float, int]:
                out = root / f"out-{next(runs)}"
                begin = time.perf_counter()
                jobs[name](source, out)
                seconds = time.perf_counter() - begin
                return seconds, _check_stored(out, expected, name)

            startup = {}
            for name in jobs:
                startup[name], _ = timed(name, short, 1)
                say(f"  start-up {name}: {startup[name]:.1f} s")
            seconds: dict[str, list[float]] = {name: [] for name in jobs}
            tokens = 0
            names = list(jobs)
            for r in range(rounds):
                for name in names[r % len(names):] + names[: r % len(names)]:
                    took, tokens = timed(name, corpus, documents)
                    seconds[name].append(took)
                    say(f"  round {r + 1}: {name}: {took:.1f} s ({documents / took:.2f} documents/s)")
        finally:
            if own_ray:
                ray.shutdown()
    settings = {"model": model_name or model, "cpus": cpus, "load_average": _load_average(),
                "torch": torch.__version__, "ray": ray.__version__,
                "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "min_words": min_words, "max_words": max_words, "chunk_size": chunk_size,
                "batch_docs": batch_docs, "rounds": rounds, "workers": list(workers),
                "ray_init_seconds": ray_init, "device": device, "dtype": dtype, "command": command}
    return RayBench(settings, [JobTiming(name, tuple(seconds[name]), startup[name], documents, tokens)
                               for name in jobs])


def _load_average() -> float | None:
    """The machine's 1-minute load average at the end (other work on the same cores slows every
    method, and threads more than single-threaded workers)."""
    try:
        return round(os.getloadavg()[0], 1)
    except OSError:
        return None


def _folder(path: Path, texts: list[str]) -> Path:
    path.mkdir(parents=True)
    for i, text in enumerate(texts):
        (path / f"doc-{i:05d}.txt").write_text(text, encoding="utf-8")
    return path


def _single(options: dict, batch_docs: int):
    def job(source: Path, out: Path) -> None:
        from dewey_core import clear_model_cache
        from dewey_core.cli import main

        clear_model_cache()  # load the model as a new command would
        argv = ["embed", str(source), "--out", str(out), "--model", options["model"], "--quiet",
                "--chunk-size", str(options["chunk_size"]), "--batch-docs", str(batch_docs)]
        argv += [x for k in ("device", "dtype") if options[k] for x in (f"--{k}", options[k])]
        with contextlib.redirect_stderr(io.StringIO()) as err:
            code = main(argv)
        if code != 0:
            raise RuntimeError(f"dewey embed failed: {err.getvalue()[-500:]}")
    return job


def _on_ray(options: dict, batch_docs: int, workers: int, cpus_per_worker: float):
    def job(source: Path, out: Path) -> None:
        from dewey_core.distributed import embed_dataset

        with contextlib.redirect_stderr(io.StringIO()):
            embed_dataset(source, out, **options, batch_docs=batch_docs, workers=workers,
                          cpus_per_worker=cpus_per_worker, progress=False)
    return job


def _check_stored(out: Path, expected: int, name: str) -> int:
    """The job stored every document once; returns their content tokens."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dewey_core.store import load_embeddings

    stored = load_embeddings(out)
    if len(stored.doc_ids) != expected or len(set(stored.doc_ids)) != expected:
        raise RuntimeError(f"{name} stored {len(stored.doc_ids)} documents, expected {expected}")
    tables = [pq.read_table(out / f"{p['name']}.documents.parquet", columns=["num_tokens"])
              for p in stored.manifest["parts"]]
    return int(pa.concat_tables(tables).column("num_tokens").to_numpy().sum())


def write_report(result: RayBench, out: Path) -> None:
    """``ray.md`` and ``ray.json`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "ray.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    (out / "ray.md").write_text(result.markdown())

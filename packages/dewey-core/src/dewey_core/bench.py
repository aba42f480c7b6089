"""Throughput benchmarks: dewey-core against sentence-transformers and chonkie on the same model.

Each tool runs at its own defaults (what a user gets: dewey-core's default backend and dtype,
sentence-transformers' float32), and dewey-core runs a second time at sentence-transformers'
dtype ("equal dtype": torch, float32 throughout, its products on oneDNN), which shows what
dewey-core adds without lowering precision: its batching, chunking and kernels. Three
measurements, all on real offline text (CPython's ``pydoc_data.topics``):

- **encoding**: mixed-length passages embedded with ``SentenceTransformer.encode`` (fixed
  batches) and with :meth:`DeweyEncoder.encode_documents` (token-budget batches).
- **late chunking**: long documents turned into chunk embeddings by
  :meth:`DeweyEncoder.late_chunk`, by embedding each chunk on its own with sentence-transformers
  (the same chunk spans) and by chonkie's ``LateChunker`` (one text at a time).
- **scaling**: throughput and peak memory against document length; each point runs in a fresh
  process so its peak resident memory is its own.

Every method does a warm-up, then the methods run in interleaved rounds (the order rotates each
round) and the median round counts. Every method of a comparison is credited with the same
token count, so tokens/s ratios are ratios of wall time.

Run ``python -m dewey_core.bench --help`` (the same as ``dewey bench``). Example (tiny):
    >>> from dewey_core.bench import mixed_passages
    >>> len(mixed_passages(5)), mixed_passages(5) == mixed_passages(5)
    (5, True)
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import random
import re
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dewey_core.chunking import char_spans, chunk_token_ranges

ENCODING, LATE_CHUNKING = "encoding", "late chunking"
DEWEY = "dewey-core"
DEWEY_EQUAL = "dewey-core, equal dtype"
"""dewey-core on torch at sentence-transformers' dtype (only where its defaults differ)."""
DEWEY_LATE = "dewey-core late_chunk"
DEWEY_LATE_EQUAL = "dewey-core late_chunk, equal dtype"
DEWEY_LATE_PLAIN = "dewey-core late_chunk, plain windows"
"""Late chunking without the carried opening context and window overlap (less compute, less
context for chunks deep in long documents)."""
ST = "sentence-transformers"
ST_PER_CHUNK = "sentence-transformers per chunk"
CHONKIE = "chonkie LateChunker"
LATE_METHODS = (DEWEY_LATE, DEWEY_LATE_EQUAL, DEWEY_LATE_PLAIN, ST_PER_CHUNK, CHONKIE)
SCALING_METHODS = (DEWEY_LATE, ST_PER_CHUNK, CHONKIE)
DEFAULT_LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384)


# ---------------------------------------------------------------------------- corpora
def _topics() -> list[str]:
    from pydoc_data.topics import topics

    return [text for _, text in sorted(topics.items())]


def mixed_passages(count: int, *, seed: int = 0, min_words: int = 8, max_words: int = 400) -> list[str]:
    """``count`` passages of log-uniformly varied length, cut in order from the pydoc topics.

    Deterministic for a given seed; original whitespace (newlines, indentation) is kept.
    """
    if count < 0 or not 0 < min_words <= max_words:
        raise ValueError(f"need count >= 0 and 0 < min_words <= max_words, got {count}, "
                         f"{min_words}, {max_words}")
    text = "\n\n".join(_topics())
    words = [m.span() for m in re.finditer(r"\S+", text)]
    rng = random.Random(seed)
    out, at = [], 0
    for _ in range(count):
        n = round(min_words * (max_words / min_words) ** rng.random())
        if at + n > len(words):
            at = 0
        out.append(text[words[at][0] : words[at + n - 1][1]])
        at += n
    return out


def long_documents(count: int, *, min_words: int = 400, max_words: int = 3000) -> list[str]:
    """The first ``count`` pydoc topics (by name) with at least ``min_words`` words, each cut to
    at most ``max_words`` words."""
    docs = []
    for text in _topics():
        words = [m.span() for m in re.finditer(r"\S+", text)]
        if len(words) >= min_words:
            docs.append(text[: words[min(max_words, len(words)) - 1][1]])
        if len(docs) == count:
            return docs
    raise ValueError(f"only {len(docs)} pydoc topics have {min_words} words or more; asked for {count}")


def documents_of_length(tokenizer, length: int, count: int) -> list[str]:
    """``count`` distinct slices of the concatenated pydoc topics, ``length`` tokens each.

    ``tokenizer`` is a fast Hugging Face tokenizer (its offsets cut the text on token edges).
    """
    text = "\n\n".join(_topics())
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = enc["offset_mapping"]
    if length < 1 or length > len(offsets):
        raise ValueError(f"length must be in [1, {len(offsets)}] tokens, got {length}")
    span = max(len(offsets) - length, 1)
    starts = [(i * length) % span for i in range(count)]
    return [text[offsets[s][0] : offsets[s + length - 1][1]] for s in starts]


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Timing:
    """Wall times of one method over the same input, one per round."""

    method: str
    seconds: tuple[float, ...]
    items: int
    """Passages or documents per run."""
    tokens: int
    """Tokens per run, counted the same way for every method of a comparison."""
    outputs: int
    """Vectors produced per run (chunk embeddings for late chunking)."""
    computed: int | None = None
    """Token positions the model actually ran per run (padding and repeated context included),
    counted at its input embedding layer; ``None`` where that layer cannot be hooked."""

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.median_seconds

    @property
    def items_per_second(self) -> float:
        return self.items / self.median_seconds

    @property
    def positions_per_second(self) -> float | None:
        """The model's work rate: equal rates mean equal speed per position, so throughput
        differences then come from how many positions each method runs."""
        return None if self.computed is None else self.computed / self.median_seconds


@dataclass(frozen=True)
class Comparison:
    """Several methods timed on the same corpus in one run."""

    name: str
    corpus: str
    timings: tuple[Timing, ...]

    def timing(self, method: str) -> Timing:
        for t in self.timings:
            if t.method == method:
                return t
        raise KeyError(f"no method {method!r} in the {self.name} comparison")

    def ratio(self, method: str, baseline: str) -> float:
        """Throughput of ``method`` over that of ``baseline`` (> 1: ``method`` is faster)."""
        return self.timing(baseline).median_seconds / self.timing(method).median_seconds


@dataclass(frozen=True)
class ScalingPoint:
    """One method on documents of one length, measured in a fresh process."""

    method: str
    length: int
    documents: int
    tokens: int
    seconds: float
    peak_rss_mib: float | None
    """Peak resident memory of the process during the timed run (model included)."""
    loaded_rss_mib: float | None
    """Resident memory just before the timed run: model loaded, warm-up done (on systems where
    the peak cannot be restarted, the peak up to then)."""
    device_peak_mib: float | None = None
    """Peak CUDA memory allocated by torch during the run (CUDA only)."""

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


@dataclass
class BenchResults:
    settings: dict[str, Any]
    comparisons: list[Comparison] = field(default_factory=list)
    scaling: list[ScalingPoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings,
                "comparisons": [{**asdict(c), "timings": [
                    {**asdict(t), "median_seconds": t.median_seconds,
                     "tokens_per_second": t.tokens_per_second,
                     "items_per_second": t.items_per_second,
                     "positions_per_second": t.positions_per_second} for t in c.timings]}
                    for c in self.comparisons],
                "scaling": [{**asdict(p), "tokens_per_second": p.tokens_per_second}
                            for p in self.scaling]}


# ---------------------------------------------------------------------------- models
@dataclass
class Models:
    """The same checkpoint loaded by dewey-core and by sentence-transformers."""

    dewey: Any
    """dewey-core at its defaults."""
    st: Any
    """sentence-transformers at its defaults (float32), or the ``dtype`` asked for."""
    dewey_equal: Any | None = None
    """dewey-core on torch at ``st``'s dtype; None where ``dewey`` already runs that way."""
    _counter: PositionCounter | None = field(default=None, repr=False)

    @classmethod
    def load(cls, model: str, device: str | None = None, dtype: str | None = None) -> Models:
        from dewey_core import DeweyEncoder

        enc = DeweyEncoder.from_pretrained(model, device=device)
        st = load_sentence_transformer(model, enc, dtype)
        equal = DeweyEncoder.from_pretrained(model, device=device, dtype=st.dtype, backend="torch",
                                             matmul_dtype="float32")
        return cls(enc, st, None if equal.model is enc.model else equal)

    def runtime(self, which: str) -> str:
        """``backend dtype, attention`` of ``dewey`` / ``dewey_equal``, or ``st``'s dtype."""
        if which == "st":
            return f"torch {str(self.st.dtype).removeprefix('torch.')}"
        m = getattr(self, which).model
        products = f" with {m.matmul_dtype} matrix products on oneDNN" if m.matmul_dtype else ""
        return f"{m.backend} {str(m.dtype).removeprefix('torch.')}{products}, {m.attention.kernel} attention"

    def counter(self) -> PositionCounter:
        """Counts positions run by the models (hooks stay for the models' lifetime)."""
        if self._counter is None:
            encoders = [e for e in (self.dewey, self.dewey_equal) if e is not None]
            self._counter = PositionCounter(encoders, getattr(self.st[0], "auto_model", None))
        return self._counter


def load_sentence_transformer(model: str, enc, dtype: Any = None):
    """sentence-transformers on ``enc``'s device at its default dtype (or ``dtype``), with the
    same sequence limit."""
    from sentence_transformers import SentenceTransformer

    kwargs = {"model_kwargs": {"dtype": dtype}} if dtype is not None else {}
    st = SentenceTransformer(str(model), device=str(enc.model.device), **kwargs)
    st.max_seq_length = enc.max_length
    return st


def quiet() -> None:
    """Silence progress bars and library warnings so the summary stays readable."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    for name in ("transformers", "sentence_transformers", "chonkie"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def processed_tokens(enc, texts: Sequence[str]) -> int:
    """Tokens the model runs for ``texts`` encoded on their own: prompt, content truncated to the
    window, special tokens. The same count is credited to every method."""
    specials = enc.model.tokenizer.num_special
    toks = enc.model.tokenizer.tokenize(list(texts), enc.model.prompts.document, offsets=False)
    return sum(min(len(t.prompt_ids) + len(t), enc.max_length - specials) + specials for t in toks)


def chunk_texts(enc, documents: Sequence[str], chunk_size: int) -> list[list[str]]:
    """The texts of the chunks dewey-core's built-in chunker cuts from each document."""
    toks = enc.model.tokenizer.tokenize(list(documents), enc.model.prompts.document)
    out = []
    for text, tok in zip(documents, toks, strict=True):
        spans = char_spans(text, tok, chunk_token_ranges(text, tok, chunk_size))
        out.append([text[s:e] for s, e in spans])
    return out


def chonkie_chunker(st, chunk_size: int):
    """chonkie's LateChunker on an already loaded sentence-transformers model (no download)."""
    import torch
    from chonkie import LateChunker
    from chonkie.embeddings.sentence_transformer import SentenceTransformerEmbeddings

    if st.dtype == torch.bfloat16:
        raise ValueError("chonkie turns token states into numpy arrays, which have no bfloat16: "
                         "run the benchmark with --dtype float16 or float32, or without chonkie")
    with warnings.catch_warnings():  # chonkie calls a renamed sentence-transformers method
        warnings.simplefilter("ignore", FutureWarning)
        return LateChunker(SentenceTransformerEmbeddings(st), chunk_size=chunk_size)


# ---------------------------------------------------------------------------- timing
class PositionCounter:
    """Counts the token positions (padding included) the models run: dewey-core encoders report
    theirs (``positions_run``, any backend); other models are counted at their input embedding
    layer."""

    def __init__(self, encoders: Sequence[Any], *backbones) -> None:
        self.encoders = list(encoders)
        self.count = 0
        self.active = bool(self.encoders)
        for backbone in backbones:
            embeddings = getattr(backbone, "get_input_embeddings", lambda: None)()
            if embeddings is not None:
                embeddings.register_forward_pre_hook(self._hook)
                self.active = True
        self.reported = self._reported()

    def _reported(self) -> int:
        return sum(e.positions_run for e in self.encoders)

    def _hook(self, module, args) -> None:
        if args and hasattr(args[0], "numel"):
            self.count += int(args[0].numel())

    def take(self) -> int | None:
        reported = self._reported()
        count = self.count + reported - self.reported
        self.count, self.reported = 0, reported
        return count if self.active else None


def _interleaved(runs: dict[str, Callable[[], int]], warmups: dict[str, Callable[[], object]],
                 rounds: int, counter: PositionCounter | None = None,
                 ) -> dict[str, tuple[list[float], int, int | None]]:
    """Warm every method up, then time ``rounds`` rounds, rotating the order each round.

    Each run returns how many vectors it produced; a method must produce the same every round.
    Returns, per method, the seconds of each round, the vectors and the positions computed.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    for warm in warmups.values():
        warm()
    names = list(runs)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    outputs: dict[str, int] = {}
    computed: dict[str, int | None] = {}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            if counter is not None:
                counter.take()
            start = time.perf_counter()
            produced = runs[name]()
            seconds[name].append(time.perf_counter() - start)
            computed.setdefault(name, counter.take() if counter is not None else None)
            if outputs.setdefault(name, produced) != produced:
                raise RuntimeError(f"{name} produced {produced} vectors, earlier {outputs[name]}")
    return {n: (seconds[n], outputs[n], computed[n]) for n in names}


def bench_encoding(models: Models, passages: Sequence[str], *, rounds: int = 3,
                   batch_size: int = 32) -> Comparison:
    """Embed ``passages`` with sentence-transformers and with dewey-core (at its defaults and,
    where they differ, at sentence-transformers' dtype); time each."""
    enc, st = models.dewey, models.st
    passages = list(passages)
    prompt = enc.model.prompts.document or None

    def run_st(texts=passages) -> int:
        out = st.encode(texts, batch_size=batch_size, normalize_embeddings=True, prompt=prompt,
                        convert_to_numpy=True, show_progress_bar=False)
        return len(out)

    def runner(encoder):
        return lambda texts=passages: len(encoder.encode_documents(texts, show_progress=False))

    runs = {ST: run_st, DEWEY: runner(enc)}
    if models.dewey_equal is not None:
        runs[DEWEY_EQUAL] = runner(models.dewey_equal)
    warm = passages[:batch_size]
    measured = _interleaved(runs, {m: (lambda run=run: run(warm)) for m, run in runs.items()},
                            rounds, models.counter())
    tokens = processed_tokens(enc, passages)
    corpus = (f"{len(passages)} pydoc passages, {tokens} tokens after truncation to "
              f"{enc.max_length}; sentence-transformers batch_size={batch_size}, dewey-core "
              f"token_budget={enc.token_budget}")
    return Comparison(ENCODING, corpus, tuple(Timing(m, tuple(s), len(passages), tokens, n, c)
                                              for m, (s, n, c) in measured.items()))


def bench_late_chunking(models: Models, documents: Sequence[str], *, chunk_size: int = 128,
                        rounds: int = 3, batch_size: int = 32,
                        methods: Sequence[str] = LATE_METHODS) -> Comparison:
    """Chunk embeddings for long ``documents`` by each of ``methods``; every method is credited
    with the documents' content tokens. The equal-dtype method is skipped where dewey-core's
    defaults already run at sentence-transformers' dtype."""
    enc, st = models.dewey, models.st
    documents = list(documents)
    chunks = chunk_texts(enc, documents, chunk_size)
    flat = [c for doc in chunks for c in doc]

    def late(encoder, **windows):
        def run(docs=documents) -> int:
            out = encoder.late_chunk(docs, chunk_size=chunk_size, show_progress=False, **windows)
            return sum(len(d.chunks) for d in out)
        return run

    def run_naive(texts=flat) -> int:
        return len(st.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                             convert_to_numpy=True, show_progress_bar=False))

    runs: dict[str, Callable[..., int]] = {
        DEWEY_LATE: late(enc), DEWEY_LATE_PLAIN: late(enc, context_tokens=0, window_overlap=0),
        ST_PER_CHUNK: run_naive}
    if models.dewey_equal is not None:
        runs[DEWEY_LATE_EQUAL] = late(models.dewey_equal)
    else:
        methods = [m for m in methods if m != DEWEY_LATE_EQUAL]
    warmups: dict[str, Callable[[], object]] = {m: (lambda run=run: run(documents[:1]))
                                                for m, run in runs.items()}
    warmups[ST_PER_CHUNK] = lambda: run_naive(chunks[0])
    if CHONKIE in methods:
        chonkie = chonkie_chunker(st, chunk_size)

        def run_chonkie(docs=documents) -> int:
            return sum(len(chonkie.chunk(d)) for d in docs)  # chonkie takes one text at a time

        runs[CHONKIE] = run_chonkie
        warmups[CHONKIE] = lambda: run_chonkie(documents[:1])
    unknown = set(methods) - set(runs)
    if unknown:
        raise ValueError(f"unknown late-chunking methods {sorted(unknown)}; expected {list(runs)}")
    runs = {m: runs[m] for m in methods}
    measured = _interleaved(runs, {m: warmups[m] for m in methods}, rounds, models.counter())
    tokens = sum(enc.count_tokens(documents))
    corpus = (f"{len(documents)} pydoc documents, {tokens} tokens ({min(enc.count_tokens(documents))}"
              f"-{max(enc.count_tokens(documents))} each), chunk_size={chunk_size} tokens, "
              f"{enc.max_length}-token window")
    return Comparison(LATE_CHUNKING, corpus, tuple(Timing(m, tuple(s), len(documents), tokens, n, c)
                                                   for m, (s, n, c) in measured.items()))


# ---------------------------------------------------------------------------- scaling
def _proc_status_mib(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            match = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) / 1024 if match else None


def peak_rss_mib() -> float | None:
    """The process's peak resident memory. On Linux this is ``VmHWM``, which (unlike
    ``ru_maxrss``) starts afresh in a spawned interpreter instead of inheriting the parent's."""
    peak = _proc_status_mib("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


def reset_peak_rss() -> float | None:
    """Restart the peak at the current resident memory (Linux >= 4.0); returns that memory, or
    ``None`` when the peak cannot be reset (then the peak so far is kept)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return _proc_status_mib("VmRSS")


def measure_point(method: str, model: str, device: str | None, dtype: str | None, length: int,
                  documents: list[str], chunks: list[str], chunk_size: int, batch_size: int,
                  tokens: int) -> ScalingPoint:
    """Load one method, warm it up on a short text, then time it on ``documents``.

    dewey-core runs at its defaults; sentence-transformers and chonkie at ``dtype``. Meant for a
    fresh process (see :func:`bench_scaling`): the peak resident memory it reports is then this
    method's alone.
    """
    import torch

    from dewey_core import DeweyEncoder

    quiet()
    warm = documents[0][:200]
    if method == DEWEY_LATE:
        enc = DeweyEncoder.from_pretrained(model, device=device)
        enc.late_chunk([warm], chunk_size=chunk_size, show_progress=False)
        cuda = enc.model.device.type == "cuda"

        def run() -> object:
            return enc.late_chunk(documents, chunk_size=chunk_size, show_progress=False)
    elif method in (ST_PER_CHUNK, CHONKIE):
        # Resolve device and dtype as dewey-core does, without loading its copy of the model.
        from sentence_transformers import SentenceTransformer

        from dewey_core.devices import resolve_device, resolve_dtype

        dev = resolve_device(device)
        cuda = dev.type == "cuda"
        st = SentenceTransformer(str(model), device=str(dev),
                                 model_kwargs={"dtype": resolve_dtype(dtype, dev)})
        if method == ST_PER_CHUNK:
            st.encode([warm], show_progress_bar=False)

            def run() -> object:
                return st.encode(chunks, batch_size=batch_size, normalize_embeddings=True,
                                 show_progress_bar=False)
        else:
            chonkie = chonkie_chunker(st, chunk_size)
            chonkie.chunk(warm)

            def run() -> object:
                return [chonkie.chunk(d) for d in documents]
    else:
        raise ValueError(f"unknown method {method!r}; expected one of {SCALING_METHODS}")
    gc.collect()
    loaded = reset_peak_rss() or peak_rss_mib()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    device_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    return ScalingPoint(method, length, len(documents), tokens, seconds, peak_rss_mib(), loaded,
                        device_peak)


def _point_worker(conn, kwargs: dict[str, Any]) -> None:
    try:
        conn.send(("ok", measure_point(**kwargs)))
    except BaseException:  # report anything, including KeyboardInterrupt, to the parent
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _in_fresh_process(kwargs: dict[str, Any]) -> ScalingPoint:
    ctx = multiprocessing.get_context("spawn")  # fresh interpreter: clean peak RSS, CUDA-safe
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_point_worker, args=(child, kwargs), daemon=True)
    proc.start()
    child.close()
    try:
        status, payload = parent.recv()
    except EOFError:
        proc.join()
        raise RuntimeError(f"the benchmark process for {kwargs['method']} at {kwargs['length']} "
                           f"tokens died (exit code {proc.exitcode}); out of memory?") from None
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{kwargs['method']} at {kwargs['length']} tokens failed:\n{payload}")
    return payload


def bench_scaling(models: Models, model: str, lengths: Sequence[int], *, tokens_per_point: int = 16384,
                  chunk_size: int = 128, batch_size: int = 32, methods: Sequence[str] = SCALING_METHODS,
                  isolate: bool = True, progress: Callable[[ScalingPoint], None] | None = None,
                  ) -> list[ScalingPoint]:
    """Throughput and peak memory of each method on documents of each length.

    Each point embeds ``max(1, tokens_per_point // length)`` documents of ``length`` content
    tokens, in a fresh process unless ``isolate`` is False (then peak memory is the process's
    high-water mark so far and not comparable between points).
    """
    unknown = set(methods) - set(SCALING_METHODS)
    if unknown:
        raise ValueError(f"unknown scaling methods {sorted(unknown)}; expected {list(SCALING_METHODS)}")
    enc = models.dewey
    device, dtype = str(enc.model.device), str(models.st.dtype).removeprefix("torch.")
    points = []
    for length in lengths:
        docs = documents_of_length(enc.tokenizer, length, max(1, tokens_per_point // length))
        chunks = [c for doc in chunk_texts(enc, docs, chunk_size) for c in doc]
        tokens = sum(enc.count_tokens(docs))
        for method in methods:
            kwargs = dict(method=method, model=str(model), device=device, dtype=dtype, length=length,
                          documents=docs, chunks=chunks, chunk_size=chunk_size, batch_size=batch_size,
                          tokens=tokens)
            point = _in_fresh_process(kwargs) if isolate else measure_point(**kwargs)
            points.append(point)
            if progress is not None:
                progress(point)
    return points


if __name__ == "__main__":
    from dewey_core.cli import main

    sys.exit(main(["bench", *sys.argv[1:]]))

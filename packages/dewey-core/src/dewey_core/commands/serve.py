"""``dewey serve --model M``: one process, one model, an OpenAI-compatible HTTP API.

Serves ``POST /v1/embeddings`` (OpenAI-compatible), ``POST /v1/late_chunk``,
``POST /v1/images/embeddings`` (Jasper), ``POST /v1/count_tokens``, ``GET /v1/models``,
``GET /health`` and ``GET /metrics``. Concurrent requests are merged into token-budget
batches. Needs the ``serve`` extra: ``pip install 'dewey-core[serve]'``.

Example:
    dewey serve --model sentence-transformers/all-MiniLM-L6-v2 --port 8080
    dewey serve --model infgrad/dewey_en_beta --device cuda --api-key "$DEWEY_API_KEY"
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dewey_core.commands.embed import add_model_options
from dewey_core.serving import KEEP_ALIVE_SECONDS


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help="serve one model over HTTP (OpenAI-compatible embeddings, "
                                         "late chunking, images)",
                              description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_model_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--served-model-name", default=None,
                   help="the name clients send as 'model' (default: the --model directory's name or id)")
    p.add_argument("--api-key", default=os.environ.get("DEWEY_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on /v1/ routes (default: $DEWEY_API_KEY)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per model window")
    p.add_argument("--token-budget", type=int, default=None,
                   help="padded tokens per forward batch (default 2048 on CPU, 16384 on GPU)")
    p.add_argument("--batch-tokens", type=int, default=None,
                   help="tokens of concurrent requests merged into one engine call (default: four "
                        "token budgets)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long a request waits for others to batch with (default 5)")
    p.add_argument("--max-queued-tokens", type=int, default=None,
                   help="tokens queued before new requests get 503 (default: 100 token budgets)")
    p.add_argument("--max-inputs", type=int, default=2048, help="inputs per request (default 2048)")
    p.add_argument("--max-request-chars", type=int, default=2_000_000,
                   help="characters of text per request (default 2000000)")
    p.add_argument("--no-batching", action="store_true",
                   help="serve requests one at a time (a baseline for benchmarks)")
    p.add_argument("--timeout-keep-alive", type=float, default=KEEP_ALIVE_SECONDS,
                   help="seconds an idle connection stays open (default %(default)s: longer than "
                        "clients keep idle pooled connections, so none reuses one being closed)")
    p.add_argument("--shutdown-timeout", type=float, default=60.0,
                   help="seconds to let in-flight requests finish on SIGTERM/SIGINT (default 60)")
    p.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    return p


def missing_serve_extra(exc: ImportError) -> str:
    """The error for a command that needs the ``serve`` extra and lacks one of its modules."""
    return f"{exc.name} is missing; install the serve extra: pip install 'dewey-core[serve]'"


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from dewey_core.serving.app import ServerSettings, create_app
    except ImportError as exc:
        return _fail(missing_serve_extra(exc))
    from dewey_core import DeweyEncoder

    try:
        settings = ServerSettings(
            model_id=args.served_model_name or _model_id(args.model), api_key=args.api_key or None,
            max_inputs=args.max_inputs, max_request_chars=args.max_request_chars,
            max_batch_tokens=args.batch_tokens, max_wait_ms=args.max_wait_ms,
            max_queued_tokens=args.max_queued_tokens, batching=not args.no_batching)
        encoder = DeweyEncoder.from_pretrained(args.model, device=args.device, dtype=args.dtype,
                                               max_length=args.max_length, token_budget=args.token_budget)
        app = create_app(encoder, settings)
    except (OSError, ValueError, TypeError) as exc:
        return _fail(str(exc))
    print(f"dewey serve: {settings.model_id} ({encoder.model.family}, {encoder.dimension}-d, "
          f"{encoder.model.device}) on http://{args.host}:{args.port}/v1", file=sys.stderr, flush=True)
    # uvicorn stops accepting on SIGTERM/SIGINT, lets in-flight requests finish, then the app's
    # lifespan drains the batch queue.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                timeout_graceful_shutdown=args.shutdown_timeout, timeout_keep_alive=args.timeout_keep_alive)
    return 0


def _model_id(model: str) -> str:
    path = Path(model)
    return path.name if path.exists() else model


def _fail(message: str) -> int:
    print(f"dewey serve: error: {message}", file=sys.stderr)
    return 2

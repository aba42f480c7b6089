"""``dewey serve``: one process holding one model, shared by every application over HTTP.

Modules: :mod:`~dewey_core.serving.app` (FastAPI routes), :mod:`~dewey_core.serving.batcher`
(cross-request batching and backpressure), :mod:`~dewey_core.serving.work` (how merged
requests run through :class:`~dewey_core.DeweyEncoder`), :mod:`~dewey_core.serving.schemas`
(request bodies), :mod:`~dewey_core.serving.wire` (vector and image encodings shared with
:class:`dewey_core.client.RemoteEncoder`). Only ``app`` and ``schemas`` need the ``serve``
extra (FastAPI, uvicorn); importing this package alone imports neither.

Example:
    dewey serve --model sentence-transformers/all-MiniLM-L6-v2 --port 8080
"""

KEEP_ALIVE_SECONDS = 75.0
"""How long the server keeps an idle connection. uvicorn's default (5 s) equals the idle expiry
of httpx's pool (the openai client's), so a client could send a request on a connection the
server is closing and get a dropped connection; the server must outlast the client."""

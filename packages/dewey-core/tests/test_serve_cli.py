"""``dewey serve`` as a process: it starts from the command line and, on SIGTERM, finishes the
requests in flight before it exits."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health_on_one_connection(port: int, idle_s: float) -> list[int]:
    """Two GET /health on one kept-alive connection, ``idle_s`` apart; each response's status.
    A connection the server closed meanwhile raises (http.client does not reconnect silently)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    statuses = []
    try:
        for i in range(2):
            if i:
                time.sleep(idle_s)
            conn.request("GET", "/health")
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
            if i == 0:
                first_socket = conn.sock
        assert conn.sock is first_socket, "the client opened a second connection"
    finally:
        conn.close()
    return statuses


@pytest.mark.slow
def test_sigterm_finishes_in_flight_requests(minilm_path, minilm, pydoc_topics):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "dewey_core.cli", "serve", "--model", minilm_path,
                             "--port", str(port), "--served-model-name", "minilm", "--device", "cpu",
                             "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.5)
        # An idle connection outlives the clients' pool expiry (httpx's 5 s): reusing it after 6 s
        # gets an answer, not a connection the server closed under the client (uvicorn's 5 s).
        assert _health_on_one_connection(port, idle_s=6.0) == [200, 200]
        # Four requests of ~2K tokens each: seconds of work on a CPU, all in flight at SIGTERM.
        words = " ".join(pydoc_topics.values()).split()
        requests = [[" ".join(words[i * 2000 + j * 150:i * 2000 + j * 150 + 150]) for j in range(8)]
                    for i in range(4)]

        def send(texts):
            return httpx.post(f"{url}/v1/embeddings", timeout=300,
                              json={"model": "minilm", "input": texts, "truncate": True})

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(send, r) for r in requests]
            time.sleep(0.5)
            assert not all(f.done() for f in futures), "the requests finished before the signal"
            proc.send_signal(signal.SIGTERM)
            responses = [f.result() for f in futures]
        # uvicorn re-raises the signal once it has shut down gracefully.
        assert proc.wait(timeout=120) in (0, -signal.SIGTERM)
        for texts, response in zip(requests, responses, strict=True):
            assert response.status_code == 200, response.text
            got = np.array([d["embedding"] for d in response.json()["data"]])
            assert (got * minilm.encode_documents(texts)).sum(1).min() >= 0.9999
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_without_a_model_fails_clearly(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dewey_core.cli", "serve", "--model", str(tmp_path / "none"),
                           "--port", str(_free_port())], capture_output=True, text=True, timeout=120,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "dewey serve: error:" in done.stderr


@pytest.mark.parametrize("module", ["aiohttp", "fastapi"])
def test_bench_serve_without_the_serve_extra_fails_clearly(module, monkeypatch, tmp_path, capsys):
    from dewey_core.cli import main

    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    assert main(["bench-serve", "--out", str(tmp_path), "--requests", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{module} is missing" in err and "dewey-core[serve]" in err
    assert not (tmp_path / "results.json").exists()

"""``dewey serve`` on loopback: real OpenAI-compatible clients and RemoteEncoder get the
in-process vectors; bad input gets a clear 4xx and the server keeps serving."""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")

from dewey_core.client import RemoteEncoder, RemoteEncoderError
from dewey_core.serving.app import ServerSettings, create_app
from dewey_core.serving.runner import serve_in_thread

KEY = "test-key"
MODEL = "minilm"
TEXTS = ["Saffron is the most expensive spice by weight.", "Rust is a language for systems programming.",
         "The town of Ardenvale exports saffron.", "short"]


@pytest.fixture(scope="module")
def server(minilm):
    settings = ServerSettings(model_id=MODEL, api_key=KEY, max_inputs=64, max_request_chars=20_000,
                              max_wait_ms=2)
    with serve_in_thread(create_app(minilm, settings)) as url:
        yield url


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as client:
        yield client


def _cosines(got, want) -> np.ndarray:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))


def assert_same_vectors(got, want) -> None:
    assert np.shape(got) == np.shape(want)
    assert _cosines(got, want).min() >= 0.9999


# ---------------------------------------------------------------------- real clients
def test_openai_client_base64_and_float(server, minilm):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=KEY)
    want = minilm.encode_documents(TEXTS)
    default = client.embeddings.create(model=MODEL, input=TEXTS)  # the client asks for base64
    assert_same_vectors([d.embedding for d in default.data], want)
    assert [d.index for d in default.data] == list(range(len(TEXTS)))
    assert default.usage.prompt_tokens == sum(minilm.count_tokens(TEXTS)) > 0
    floats = client.embeddings.create(model=MODEL, input=TEXTS[0], encoding_format="float")
    assert_same_vectors([floats.data[0].embedding], want[:1])
    small = client.embeddings.create(model=MODEL, input=TEXTS, dimensions=96)
    assert_same_vectors([d.embedding for d in small.data], minilm.encode_documents(TEXTS, dim=96))
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]


def test_openai_client_errors_are_4xx_with_messages(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError, match="is not served here"):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.UnprocessableEntityError, match="out of range"):
        client.embeddings.create(model=MODEL, input="x", dimensions=4096)
    wrong = openai.OpenAI(base_url=f"{server}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="incorrect API key"):
        wrong.embeddings.create(model=MODEL, input="x")


def test_langchain_openai_embeddings(server, minilm):
    lc = pytest.importorskip("langchain_openai")
    emb = lc.OpenAIEmbeddings(model=MODEL, base_url=f"{server}/v1", api_key=KEY,
                              check_embedding_ctx_length=False)
    assert_same_vectors(emb.embed_documents(TEXTS), minilm.encode_documents(TEXTS))
    assert_same_vectors([emb.embed_query(TEXTS[0])], minilm.encode_documents(TEXTS[:1]))


def test_llamaindex_openai_like_embedding(server, minilm):
    openai_like = pytest.importorskip("llama_index.embeddings.openai_like")
    emb = openai_like.OpenAILikeEmbedding(model_name=MODEL, api_base=f"{server}/v1", api_key=KEY,
                                          embed_batch_size=3)
    assert_same_vectors(emb.get_text_embedding_batch(TEXTS), minilm.encode_documents(TEXTS))
    assert_same_vectors([emb.get_query_embedding(TEXTS[1])], minilm.encode_documents(TEXTS[1:2]))


def test_haystack_openai_embedders(server, minilm):
    from haystack import Document
    from haystack.components.embedders import OpenAIDocumentEmbedder, OpenAITextEmbedder
    from haystack.utils import Secret

    text = OpenAITextEmbedder(api_key=Secret.from_token(KEY), model=MODEL, api_base_url=f"{server}/v1")
    assert_same_vectors([text.run(TEXTS[2])["embedding"]], minilm.encode_documents(TEXTS[2:3]))
    docs = OpenAIDocumentEmbedder(api_key=Secret.from_token(KEY), model=MODEL, api_base_url=f"{server}/v1",
                                  progress_bar=False).run([Document(content=t) for t in TEXTS])["documents"]
    assert_same_vectors([d.embedding for d in docs], minilm.encode_documents(TEXTS))


# ---------------------------------------------------------------------- RemoteEncoder
@pytest.fixture(scope="module")
def remote(server):
    with RemoteEncoder(server, api_key=KEY, request_inputs=5) as enc:
        yield enc


def test_remote_encoder_matches_in_process(remote, minilm, pydoc_topics):
    assert remote.dimension == minilm.dimension == 384
    assert remote.max_length == minilm.max_length
    many = [t[:300] for t in list(pydoc_topics.values())[:12]]  # several requests of 5
    assert_same_vectors(remote.encode_documents(many), minilm.encode_documents(many))
    assert_same_vectors(remote.encode_queries(TEXTS, 64), minilm.encode_queries(TEXTS, 64))
    assert_same_vectors(remote.encode_documents(TEXTS, prompt="passage: "),
                        minilm.encode_documents(TEXTS, prompt="passage: "))
    raw = remote.encode_documents(TEXTS[:2], normalize=False)
    assert np.allclose(raw, minilm.encode_documents(TEXTS[:2], normalize=False), atol=1e-4)
    # Longer than the window: truncated as in process, never refused.
    long = [" ".join(pydoc_topics["assignment"].split()[:600])]
    assert_same_vectors(remote.encode_documents(long), minilm.encode_documents(long))
    assert remote.count_tokens(TEXTS) == minilm.count_tokens(TEXTS)
    assert remote.encode_documents([]).shape == (0, 384)


def _assert_same_documents(got, want) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert (g.text, g.num_tokens, g.num_windows) == (w.text, w.num_tokens, w.num_windows)
        assert [(c.text, c.start, c.end) for c in g.chunks] == [(c.text, c.start, c.end) for c in w.chunks]
        assert_same_vectors([g.global_embedding], [w.global_embedding])
        if w.chunks:
            assert_same_vectors(g.chunk_embeddings, w.chunk_embeddings)


def test_remote_late_chunk_equals_in_process(remote, minilm, pydoc_topics):
    docs = [pydoc_topics[name] for name in ("assignment", "if", "while", "with")]  # some span windows
    docs.append("")
    want = minilm.late_chunk(docs, chunk_size=64, chunk_overlap=8, dim=128, context_tokens=16)
    got = remote.late_chunk(docs, chunk_size=64, chunk_overlap=8, dim=128, context_tokens=16)
    assert max(d.num_windows for d in want) > 1
    _assert_same_documents(got, want)
    spans = [[(0, 40), (40, len(d))] if d else [] for d in docs]
    _assert_same_documents(remote.late_chunk(docs, spans), minilm.late_chunk(docs, spans))
    overlapping = [[(0, 40), (20, 60)]]
    with pytest.raises(ValueError, match="overlaps the previous span"):
        remote.late_chunk(docs[:1], overlapping)
    _assert_same_documents(remote.late_chunk(docs[:1], overlapping, allow_overlap=True),
                           minilm.late_chunk(docs[:1], overlapping, allow_overlap=True))


def test_remote_encoder_takes_what_the_engine_takes(remote, minilm, pydoc_topics):
    text = pydoc_topics["while"]
    got = remote.late_chunk([text], chunk_size=np.int64(16), chunk_overlap=np.int64(4),
                            context_tokens=np.int64(8), window_overlap=np.int32(4))
    want = minilm.late_chunk([text], chunk_size=16, chunk_overlap=4, context_tokens=8, window_overlap=4)
    _assert_same_documents(got, want)
    assert remote.prompts == minilm.prompts
    assert_same_vectors(remote.encode_queries(TEXTS, prompt_name="query"), minilm.encode_queries(TEXTS))


def test_remote_encoder_splits_a_request_the_server_finds_too_large(tmp_path):
    from dewey_core import DeweyEncoder
    from dewey_core.testing import tiny_dewey

    # Byte-level BPE takes about three tokens per emoji: two texts that fit one at a time, packed
    # into one request by their characters, exceed the queue's bound; the client sends them apart.
    enc = DeweyEncoder.from_pretrained(tiny_dewey(tmp_path / "dewey"), device="cpu")
    texts = ["\U0001f680" * 600, "\U0001f389" * 600]
    tokens = enc.count_tokens(texts)
    settings = ServerSettings(model_id=MODEL, max_queued_tokens=3000, max_wait_ms=2)
    assert max(tokens) < 2900 < sum(tokens) and sum(map(len, texts)) < 3000 // 2
    with serve_in_thread(create_app(enc, settings)) as url, RemoteEncoder(url) as remote:
        assert_same_vectors(remote.encode_documents(texts), enc.encode_documents(texts))
        assert remote.count_tokens(texts) == tokens


def test_remote_encoder_checks_input_like_the_engine(remote):
    with pytest.raises(TypeError, match="wrap a single text"):
        remote.encode_documents("one text")
    with pytest.raises(TypeError, match=r"texts\[1\] must be str"):
        remote.encode_queries(["a", 3])
    with pytest.raises(ValueError, match="out of range"):
        remote.encode_documents(["a"], dim=1000)
    with pytest.raises(RemoteEncoderError, match="embeds text only") as info:
        remote.encode_images([b"png"])
    assert info.value.status == 422
    with pytest.raises(ValueError, match="holds a lone surrogate"):
        remote.encode_documents(["a \ud83d b"])
    with pytest.raises(ValueError, match="has no room for text"):  # found by the server: a 422
        remote.encode_documents(["a"], prompt="word " * 300)
    # Window settings are checked before any request, as in process, empty input included.
    with pytest.raises(ValueError, match="context_tokens must be >= 0"):
        remote.late_chunk([], context_tokens=-1)
    with pytest.raises(TypeError, match="context_tokens must be an int"):
        remote.late_chunk(["a"], context_tokens=2.0)
    with pytest.raises(ValueError, match="must be smaller than the window's capacity"):
        remote.late_chunk(["a"], context_tokens=200, window_overlap=100)
    with pytest.raises(ValueError, match="unknown prompt_name 'nope'"):
        remote.encode_queries(["a"], prompt_name="nope")
    with pytest.raises(RemoteEncoderError, match="not served"):
        _ = RemoteEncoder(remote.base_url, api_key=KEY, model="other").dimension
    with pytest.raises(RemoteEncoderError, match="incorrect API key"):
        _ = RemoteEncoder(remote.base_url, api_key="bad").dimension


# ---------------------------------------------------------------------- bad input
BAD = [
    ("empty list", "/v1/embeddings", {"input": []}, 422, "input is an empty list"),
    ("not strings", "/v1/embeddings", {"input": ["a", 3]}, 422, "input[1] must be a string"),
    ("token arrays", "/v1/embeddings", {"input": [[1, 2, 3]]}, 422, "token arrays are not accepted"),
    ("not a list", "/v1/embeddings", {"input": {"text": "a"}}, 422, "must be a string or a list"),
    ("missing input", "/v1/embeddings", {}, 422, "input: required field is missing"),
    ("unknown field", "/v1/embeddings", {"input": "a", "dimension": 3}, 422, "dimension: unknown field"),
    ("too many inputs", "/v1/embeddings", {"input": ["a"] * 65}, 413, "at most 64 per request"),
    ("too many chars", "/v1/embeddings", {"input": ["word " * 4001]}, 413, "at most 20000"),
    ("too long input", "/v1/embeddings", {"input": ["word " * 400]}, 422, "takes at most 254"),
    ("unknown model", "/v1/embeddings", {"input": "a", "model": "gpt"}, 404, "'gpt' is not served here"),
    ("dimensions too big", "/v1/embeddings", {"input": "a", "dimensions": 385}, 422, "at most 384"),
    ("dimensions zero", "/v1/embeddings", {"input": "a", "dimensions": 0}, 422, "greater than or equal to 1"),
    ("dimensions text", "/v1/embeddings", {"input": "a", "dimensions": "64"}, 422, "valid integer"),
    ("bad format", "/v1/embeddings", {"input": "a", "encoding_format": "int8"}, 422, "encoding_format"),
    ("bad input_type", "/v1/embeddings", {"input": "a", "input_type": "passage"}, 422, "input_type"),
    ("no documents", "/v1/late_chunk", {"documents": []}, 422, "documents"),
    ("span out of range", "/v1/late_chunk", {"documents": ["abc"], "spans": [[[0, 9]]]}, 422,
     "out of range for a text of 3 characters"),
    ("spans count", "/v1/late_chunk", {"documents": ["abc"], "spans": []}, 422, "spans has 0 entries"),
    ("bad chunk size", "/v1/late_chunk", {"documents": ["abc"], "chunk_size": 0}, 422, "chunk_size"),
    ("images on text model", "/v1/images/embeddings", {"input": ["aGVsbG8="]}, 422, "embeds text only"),
    ("count tokens empty", "/v1/count_tokens", {"input": []}, 422, "input"),
    # A lone surrogate (a string sliced through an emoji's UTF-16 pair) is valid JSON, not text.
    ("lone surrogate", "/v1/embeddings", {"input": ["a \ud83d b"]}, 422, "input[0] holds a lone surrogate"),
    ("lone surrogate, late chunk", "/v1/late_chunk", {"documents": ["x", "a \ud83d b"]}, 422,
     "documents[1] holds a lone surrogate"),
    ("lone surrogate, count", "/v1/count_tokens", {"input": ["\ud83d"]}, 422,
     "input[0] holds a lone surrogate"),
    ("prompt over the window", "/v1/embeddings", {"input": ["a"], "prompt": "word " * 300}, 422,
     "has no room for text"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(http, path, body, status, message):
    # json.dumps escapes non-ASCII (httpx's json= cannot encode a lone surrogate).
    response = http.post(path, content=json.dumps({"model": MODEL, **body}),
                         headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert http.post("/v1/embeddings", json={"model": MODEL, "input": "still serving"}).status_code == 200


def test_malformed_json_and_unknown_routes(http):
    response = http.post("/v1/embeddings", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]
    body = json.dumps({"model": MODEL, "input": "x"}).encode()
    for headers in ({"content-type": "application/x-www-form-urlencoded"}, {}):  # curl -d, or none
        response = http.post("/v1/embeddings", content=body, headers=headers)
        assert response.status_code == 415, response.text
        assert "Content-Type: application/json" in response.json()["error"]["message"]
    response = http.get("/v1/chat/completions")
    assert response.status_code == 404 and "no route" in response.json()["error"]["message"]


def test_api_key(server):
    body = {"model": MODEL, "input": "x"}
    missing = httpx.post(f"{server}/v1/embeddings", json=body)
    assert missing.status_code == 401 and "missing API key" in missing.json()["error"]["message"]
    wrong = httpx.post(f"{server}/v1/embeddings", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    for header in (f"bearer {KEY}", f"BEARER  {KEY}"):  # the scheme is case-insensitive
        ok = httpx.post(f"{server}/v1/embeddings", json=body, headers={"Authorization": header}, timeout=60)
        assert ok.status_code == 200, ok.text
    basic = httpx.post(f"{server}/v1/embeddings", json=body, headers={"Authorization": f"Basic {KEY}"})
    assert basic.status_code == 401 and "Authorization: Bearer <key>" in basic.json()["error"]["message"]
    assert httpx.get(f"{server}/v1/models").status_code == 401
    for page in ("/docs", "/redoc", "/openapi.json"):  # the API's description is behind the key too
        assert httpx.get(f"{server}{page}").status_code == 401
        assert httpx.get(f"{server}{page}", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert httpx.get(f"{server}/health").json()["status"] == "ok"  # probes need no key


def test_input_type_picks_the_prompt(tmp_path):
    from fastapi.testclient import TestClient

    from dewey_core import DeweyEncoder
    from dewey_core.testing import tiny_dewey

    enc = DeweyEncoder.from_pretrained(tiny_dewey(tmp_path / "dewey"), device="cpu")
    with TestClient(create_app(enc, ServerSettings(model_id="tiny"))) as client:
        def embed(**extra):
            r = client.post("/v1/embeddings", json={"model": "tiny", "input": TEXTS[:2], **extra})
            assert r.status_code == 200, r.text
            return [d["embedding"] for d in r.json()["data"]]

        documents, queries = embed(), embed(input_type="query")
        assert_same_vectors(documents, enc.encode_documents(TEXTS[:2]))
        assert_same_vectors(queries, enc.encode_queries(TEXTS[:2]))
        # The two prompts give different vectors (a random tiny model: close, yet far apart
        # compared with the served vs in-process difference).
        served_vs_local = np.abs(np.asarray(queries) - enc.encode_queries(TEXTS[:2])).max()
        assert np.abs(np.asarray(queries) - enc.encode_documents(TEXTS[:2])).max() > 20 * served_vs_local
        assert_same_vectors(embed(input_type="document", prompt=""),
                            enc.encode_documents(TEXTS[:2], prompt=""))


def test_request_body_limit(minilm):
    from fastapi.testclient import TestClient

    app = create_app(minilm, ServerSettings(model_id=MODEL, max_body_bytes=1000))
    with TestClient(app) as client:
        big = {"model": MODEL, "input": ["x" * 2000]}
        response = client.post("/v1/embeddings", json=big)
        assert response.status_code == 413 and "1000" in response.json()["error"]["message"]

        def chunked():  # no Content-Length: the size is checked while reading
            yield b'{"model": "minilm", "input": ["'
            yield b"x" * 2000
            yield b'"]}'
        response = client.post("/v1/embeddings", content=chunked(),
                               headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert client.post("/v1/embeddings", json={"model": MODEL, "input": ["ok"]}).status_code == 200


def test_health_models_and_metrics(http, server):
    card = http.get("/v1/models").json()["data"][0]
    assert card["id"] == MODEL and card["dimension"] == 384 and card["supports_images"] is False
    assert http.get(f"/v1/models/{MODEL}").json()["id"] == MODEL
    assert http.get("/v1/models/other").status_code == 404
    http.post("/v1/embeddings", json={"model": MODEL, "input": TEXTS})
    text = httpx.get(f"{server}/metrics").text
    assert 'dewey_requests_total{route="/v1/embeddings",status="200"}' in text
    assert "dewey_batch_requests_count" in text and "dewey_queue_tokens" in text
    assert 'dewey_rejected_total{reason="too_many_inputs"}' in text or "dewey_rejected" in text


def test_a_request_whose_client_left_is_dropped_before_the_model_runs_it(minilm):
    # A queued request waits up to 2 s for company; its client gives up after 0.3 s. The job
    # must leave the queue at once and never reach the model (timed-out clients retry, and
    # every abandoned copy would otherwise be computed ahead of live requests).
    settings = ServerSettings(model_id=MODEL, max_batch_tokens=100_000, max_wait_ms=2000)
    with serve_in_thread(create_app(minilm, settings)) as url:
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, "input": ["town"] * 50}, timeout=0.3)
        deadline = time.monotonic() + 1.0
        while httpx.get(f"{url}/health").json()["queued_requests"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert httpx.get(f"{url}/health").json()["queued_requests"] == 0
        metrics = httpx.get(f"{url}/metrics").text
        assert 'dewey_rejected_total{reason="client_gone"} 1.0' in metrics
        assert "dewey_batch_requests_count 0.0" in metrics  # no model call was made
        live = httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, "input": ["town"]}, timeout=60)
        assert live.status_code == 200


def test_a_full_queue_answers_503_and_an_oversized_request_413(minilm):
    from concurrent.futures import ThreadPoolExecutor

    # The first request waits up to 2 s for company, so the queue is full when the second comes.
    settings = ServerSettings(model_id=MODEL, max_queued_tokens=300, max_batch_tokens=10_000,
                              max_wait_ms=2000)
    text = " ".join(["town"] * 100)  # 100 tokens (+2 special) of work each
    with serve_in_thread(create_app(minilm, settings)) as url:
        def post(body):
            return httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, **body}, timeout=60)

        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(post, {"input": [text]})
            time.sleep(0.5)
            busy = post({"input": [text, text]})
            assert first.result().status_code == 200
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert "the server is busy" in busy.json()["error"]["message"]
        oversized = post({"input": [text, text, text]})
        assert oversized.status_code == 413
        assert "more than the server queues at once (300)" in oversized.json()["error"]["message"]
        assert post({"input": [text]}).status_code == 200
        metrics = httpx.get(f"{url}/metrics").text
        assert 'dewey_rejected_total{reason="overloaded"} 1.0' in metrics


def test_a_failure_inside_the_server_answers_a_json_500_and_the_server_keeps_serving(minilm, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    with serve_in_thread(create_app(minilm, ServerSettings(model_id=MODEL, max_wait_ms=2))) as url:
        monkeypatch.setattr(minilm, "encode_documents", broken)
        response = httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, "input": ["a"]}, timeout=60)
        assert response.status_code == 500
        error = response.json()["error"]
        assert error["code"] == "internal_error" and "RuntimeError" in error["message"]
        monkeypatch.undo()
        assert httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, "input": ["a"]},
                          timeout=60).status_code == 200

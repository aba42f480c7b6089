"""Each adapter's README flow on real embedded stores, across a restart: one process ingests
(tests/store_flows/<framework>_flow.py ingest), a second one opens the persisted stores and
retrieves. Per store: the results equal the in-memory store's, filters pass through, no chunk
text is embedded at query time, and no stored or returned metadata holds a vector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

FLOWS = Path(__file__).parent / "store_flows"
sys.path.insert(0, str(FLOWS))
from common import FILTER_TOPIC, QUESTIONS  # noqa: E402

pytestmark = pytest.mark.stores

STORES = {
    "langchain": ("memory", "chroma", "qdrant", "faiss_l2", "faiss_ip", "lancedb"),
    "llamaindex": ("memory", "chroma", "qdrant", "faiss_l2", "faiss_ip", "lancedb"),
    "haystack": ("memory", "chroma", "qdrant", "lancedb"),
}
QUERY_PROBES = {"dummy_text"}
"""Texts a store embeds to learn the vector size (langchain-qdrant does), not chunk texts."""


def _run(framework: str, *args: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HAYSTACK_TELEMETRY_ENABLED": "False",
           "ANONYMIZED_TELEMETRY": "False", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    done = subprocess.run([sys.executable, str(FLOWS / f"{framework}_flow.py"), *args], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{framework} {args[0]} failed:\n{done.stderr[-4000:]}"


@pytest.fixture(scope="session")
def roundtrips(tmp_path_factory) -> dict[str, dict]:
    """Ingest in one process per framework, then retrieve in another (frameworks side by side)."""
    root = tmp_path_factory.mktemp("stores")
    for framework in STORES:
        (root / framework).mkdir()
    with ThreadPoolExecutor(len(STORES)) as pool:
        list(pool.map(lambda f: _run(f, "ingest", str(root / f)), STORES))
        list(pool.map(lambda f: _run(f, "retrieve", str(root / f), str(root / f"{f}.json")), STORES))
    return {f: json.loads((root / f"{f}.json").read_text()) for f in STORES}


def _ranked(hits: list[dict]) -> list[tuple[str, float]]:
    return [(h["id"], h["score"]) for h in hits]


def _assert_same(got: list[dict], expected: list[dict], where: str) -> None:
    assert [h["id"] for h in got] == [h["id"] for h in expected], where
    assert [h["score"] for h in got] == pytest.approx([h["score"] for h in expected], abs=1e-5), where


CASES = [(f, s) for f, stores in STORES.items() for s in stores]


@pytest.mark.slow
@pytest.mark.parametrize("framework, store", CASES, ids=[f"{f}-{s}" for f, s in CASES])
def test_results_after_a_restart_equal_the_in_memory_store(roundtrips, framework, store):
    results = roundtrips[framework]["results"]
    got, reference = results[store], results["memory"]
    assert got["stored_chunks"] == reference["stored_chunks"] > len(QUESTIONS)
    for mode in ("chunks", "documents"):
        for question in reference.get(mode, {}):
            _assert_same(got[mode][question], reference[mode][question], f"{store} {mode}: {question}")
    assert reference["chunks"][QUESTIONS[1]], "the questions find something"
    # Fusion is on: scores are not the chunk scores alone.
    first = reference["chunks"][QUESTIONS[0]][0]
    if "chunk_score" in first:
        assert first["global_score"] is not None and first["score"] != pytest.approx(first["chunk_score"])


@pytest.mark.slow
@pytest.mark.parametrize("framework, store", CASES, ids=[f"{f}-{s}" for f, s in CASES])
def test_filters_pass_through_to_the_store(roundtrips, framework, store):
    got = roundtrips[framework]["results"][store]
    if "filtered" not in got:
        # A store without metadata filters (LlamaIndex's FAISS) must refuse the filter by name,
        # never drop it and return unfiltered hits.
        assert "filter" in got["filter_error"].lower(), got["filter_error"]
        return
    assert got["filtered"] and {h["source"] for h in got["filtered"]} == {FILTER_TOPIC}
    _assert_same(got["filtered"], roundtrips[framework]["results"]["memory"]["filtered"], store)
    if "filtered_per_call" in got:
        _assert_same(got["filtered_per_call"], got["filtered"], f"{store} per call")


@pytest.mark.slow
@pytest.mark.parametrize("framework, store", CASES, ids=[f"{f}-{s}" for f, s in CASES])
def test_no_vector_in_stored_or_returned_metadata(roundtrips, framework, store):
    got = roundtrips[framework]["results"][store]
    assert got["vectors_in_stored_metadata"] == []
    hits = [h for mode in ("chunks", "documents") for hs in got.get(mode, {}).values() for h in hs]
    assert hits and all(h["vectors_in_result"] == [] for h in hits)


@pytest.mark.slow
@pytest.mark.parametrize("framework", STORES)
def test_nothing_but_the_queries_is_embedded_at_query_time(roundtrips, framework):
    run = roundtrips[framework]
    assert set(run["calls"]) <= {"encode_queries", "encode_documents"}  # no late chunking
    assert set(run["embedded"]["encode_documents"]) <= QUERY_PROBES
    assert set(run["embedded"]["encode_queries"]) <= set(QUESTIONS)


@pytest.mark.slow
def test_dewey_retriever_on_the_in_memory_store_equals_fusion_after_its_retriever(roundtrips):
    results = roundtrips["haystack"]["results"]
    for question in QUESTIONS:
        _assert_same(results["memory_dewey_retriever"]["chunks"][question],
                     results["memory"]["chunks"][question], question)

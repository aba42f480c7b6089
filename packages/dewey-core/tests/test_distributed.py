"""``dewey embed --ray`` on a local Ray (2 CPUs, shared by the module's tests) with MiniLM.

Every run is compared with the single-machine command on the same documents: same document and
chunk ids, offsets and texts, vectors within cosine 0.9999, each document stored once, and no
file in OUT that the manifest does not list.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dewey_core.cli import main
from dewey_core.distributed import EXIT_ONCE_ENV, embed_dataset
from dewey_core.store import KINDS, MANIFEST, load_embeddings

CHUNK_SIZE = "48"
WORDS = 500


@pytest.fixture(scope="module")
def ray_address():
    import ray

    ray.init(num_cpus=2, object_store_memory=1 << 30, include_dashboard=False,
             logging_level=logging.WARNING)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def documents(pydoc_topics) -> dict[str, str]:
    """24 real documents of up to 500 words (several 256-token windows each)."""
    return {f"{name}.txt": " ".join(text.split()[:WORDS])
            for name, text in list(pydoc_topics.items())[:24]}


@pytest.fixture(scope="module")
def folder(documents, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    for name, text in documents.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def reference(folder, minilm_path, tmp_path_factory):
    """The single-machine command's output for the same documents."""
    out = tmp_path_factory.mktemp("reference") / "store"
    assert embed(minilm_path, folder, out) == 0
    return out


def embed(minilm_path, source, out, *extra) -> int:
    return main(["embed", str(source), "--out", str(out), "--model", minilm_path, "--quiet",
                 "--chunk-size", CHUNK_SIZE, *extra])


def assert_same_store(out, reference) -> None:
    got, ref = load_embeddings(out), load_embeddings(reference)
    assert len(got.doc_ids) == len(set(got.doc_ids)), "a document is stored twice"
    assert sorted(got.doc_ids) == sorted(ref.doc_ids)
    assert got.manifest["settings"] == ref.manifest["settings"]
    assert got.manifest["dimension"] == ref.manifest["dimension"]

    def ordered(s):
        order = sorted(range(len(s.chunk_doc_ids)), key=lambda i: (s.chunk_doc_ids[i], s.chunk_index[i]))
        rows = [(s.chunk_doc_ids[i], int(s.chunk_index[i]), *map(int, s.chunk_offsets[i]), s.chunk_texts[i])
                for i in order]
        return rows, s.chunk_vectors[order]

    (got_rows, got_vectors), (ref_rows, ref_vectors) = ordered(got), ordered(ref)
    assert got_rows == ref_rows
    assert np.sum(got_vectors * ref_vectors, axis=1).min() > 0.9999
    got_docs = dict(zip(got.doc_ids, got.doc_vectors, strict=True))
    assert min(float(got_docs[d] @ v) for d, v in zip(ref.doc_ids, ref.doc_vectors, strict=True)) > 0.9999
    # Nothing in OUT but the committed parts and the manifest (no half-written or orphan part).
    listed = {f"{p['name']}.{kind}.parquet" for p in got.manifest["parts"] for kind in KINDS}
    assert set(os.listdir(out)) == listed | {MANIFEST}


def test_ray_output_equals_single_machine_and_names_unreadable_files(
        ray_address, minilm_path, folder, reference, tmp_path, capsys):
    source = tmp_path / "corpus"
    source.mkdir()
    for file in folder.iterdir():
        (source / file.name).symlink_to(file)
    (source / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (source / "gone.md").symlink_to(tmp_path / "missing.md")
    out = tmp_path / "store"
    assert embed(minilm_path, source, out, "--ray", "--workers", "2", "--batch-docs", "3") == 1
    err = capsys.readouterr().err
    assert "cannot read " + str(source / "latin1.txt") + ": not UTF-8" in err
    assert "cannot read " + str(source / "gone.md") + ": No such file" in err
    assert "24 documents" in err and "2 skipped:" in err
    assert_same_store(out, reference)
    parts = load_embeddings(out).manifest["parts"]
    assert len(parts) >= 8 and max(len(p["documents"]) for p in parts) <= 3  # batches of 3 at most

    assert main(["search", str(out), "comparison operators", "--json", "--top-k", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"][0]["doc_id"] == "comparisons.txt"


def test_worker_killed_mid_run_is_retried_and_every_document_stored_once(
        ray_address, minilm_path, documents, reference, tmp_path, monkeypatch, capsys):
    source = tmp_path / "docs.jsonl"
    lines = [json.dumps({"id": name, "text": text}) for name, text in documents.items()]
    first = next(iter(documents))
    lines[3:3] = ["{not json", json.dumps({"id": first, "text": "a second copy"})]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    marker = tmp_path / "an actor died"
    monkeypatch.setenv(EXIT_ONCE_ENV, str(marker))
    out = tmp_path / "store"
    report = embed_dataset(source, out, model=minilm_path, chunk_size=int(CHUNK_SIZE), batch_docs=2,
                           workers=2, progress=False)
    assert marker.exists(), "no actor died: the fault was not injected"
    assert report.embedded == len(documents) and report.stored == len(documents)
    assert [f.origin for f in report.failures] == [f"{source}:4", f"{source}:5"]
    assert f"duplicate document id {first!r}" in report.failures[1].reason
    assert f"cannot read {source}:4" in capsys.readouterr().err
    assert_same_store(out, reference)


def test_driver_killed_mid_run_then_resumed_equals_an_uninterrupted_run(
        ray_address, minilm_path, documents, reference, tmp_path):
    source = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": list(documents), "text": list(documents.values())}), source,
                   row_group_size=5)
    out = tmp_path / "store"
    log = tmp_path / "driver.log"
    command = [sys.executable, "-m", "dewey_core.cli", "embed", str(source), "--out", str(out),
               "--model", minilm_path, "--chunk-size", CHUNK_SIZE, "--batch-docs", "2", "--quiet",
               "--ray", "--ray-address", ray_address, "--workers", "2"]
    with log.open("w") as sink:
        driver = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            committed = _wait_for_first_commit(out, driver, log)
            driver.send_signal(signal.SIGKILL)
        finally:
            driver.kill()
            driver.wait()
    assert 0 < committed < len(documents), f"killed at {committed} of {len(documents)} documents"
    assert driver.returncode == -signal.SIGKILL
    stored = load_embeddings(out).doc_ids
    committed = {f.name: f.stat().st_mtime_ns for f in out.glob("part-*.parquet")
                 if f.name.split(".")[0] in {p["name"] for p in load_embeddings(out).manifest["parts"]}}
    # What a dead run can leave besides its committed parts: a part it never committed, a half write.
    (out / "part-0123456789abcdef0123.chunks.parquet").write_bytes(b"never committed")
    (out / "part-0123456789abcdef0123.documents.parquet.5f3a.tmp").write_bytes(b"half-written")
    report = embed_dataset(source, out, model=minilm_path, chunk_size=int(CHUNK_SIZE), batch_docs=2,
                           workers=2, progress=False)
    assert report.embedded == len(documents) - len(stored) and report.failures == []
    # Committed documents are not embedded again: their parts are untouched.
    assert {name: (out / name).stat().st_mtime_ns for name in committed} == committed
    assert_same_store(out, reference)  # the debris is gone, every document stored once


def _wait_for_first_commit(out, driver, log, timeout: float = 300.0) -> int:
    """Documents in the manifest once it lists a part (the driver must still be running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert driver.poll() is None, f"the driver ended before any commit:\n{log.read_text()[-3000:]}"
        try:
            parts = json.loads((out / MANIFEST).read_text())["parts"]
        except (OSError, ValueError):
            parts = []
        if parts:
            return sum(len(p["documents"]) for p in parts)
        time.sleep(0.02)
    raise AssertionError("no part committed in time")


def test_options_are_checked_before_anything_is_written(ray_address, minilm_path, folder, tmp_path,
                                                         capsys):
    out = tmp_path / "store"
    assert embed(minilm_path, folder, out, "--ray", "--dim", "9999") == 2
    assert "dim=9999 is out of range" in capsys.readouterr().err and not out.exists()
    assert embed(minilm_path, folder, out, "--ray", "--workers", "0") == 2
    assert "workers must be at least 1" in capsys.readouterr().err and not out.exists()

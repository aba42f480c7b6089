"""What both ``dewey embed`` paths share: reading folders, JSONL and Parquet (local or by URI), the
store's commits and clean-up, and that the plain command never imports Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dewey_core import Chunk, LateChunkedDocument
from dewey_core import corpus as corpus_module
from dewey_core.cli import main
from dewey_core.corpus import Corpus, SourceDocument, SourceError
from dewey_core.store import MANIFEST, EmbeddingStore, load_embeddings, write_part

TEXTS = {"saffron": "Ardenvale lies in the hills. Its economy depends on saffron.",
         "tides": "The tide rises twice a day.\r\nThe moon pulls the water.",
         "bread": "Bread needs flour, water, salt and yeast."}


def items(corpus: Corpus, **kwargs) -> list[tuple]:
    return [(i.doc_id, i.text, i.origin) if isinstance(i, SourceDocument) else ("error", i.origin, i.reason)
            for i in corpus.scan(**kwargs)]


def test_parquet_rows_get_ids_and_bad_rows_are_named(tmp_path):
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": ["a", "b", None, "a", "c"],
                             "text": ["one", None, "three", "again", "five"]}), path, row_group_size=2)
    corpus = Corpus.open(path)
    assert corpus.kind == "parquet" and corpus.count() == 5
    assert items(corpus) == [("a", "one", f"{path}:row 0"), ("error", f"{path}:row 1", '"text" is null'),
                             ("error", f"{path}:row 2", '"id" is null'), ("a", "again", f"{path}:row 3"),
                             ("c", "five", f"{path}:row 4")]
    # Without texts the ids come from the id column alone; a null text is found when it is fetched.
    index = list(corpus.scan(with_text=False))
    assert [d.doc_id for d in index if isinstance(d, SourceDocument)] == ["a", "b", "a", "c"]
    fetched = corpus.fetch([d for d in index if isinstance(d, SourceDocument)])
    assert [f.text if isinstance(f, SourceDocument) else f.reason for f in fetched] == \
        ["one", '"text" is null', "again", "five"]


def test_parquet_folder_without_ids_numbers_rows_in_each_file(tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    pq.write_table(pa.table({"text": ["x0", "x1"]}), folder / "a.parquet")
    pq.write_table(pa.table({"text": ["y0"], "source": ["web"]}), folder / "b.parquet")
    pq.write_table(pa.table({"body": ["z"]}), folder / "c.parquet")
    pq.write_table(pa.table({"id": [1.5], "text": ["w"]}), folder / "d.parquet")
    corpus = Corpus.open(folder)
    assert corpus.kind == "parquet"
    found = items(corpus)
    # An id names its file, so it never shifts when another file is unreadable, fixed or added.
    assert found[:3] == [("a.parquet:row-0", "x0", str(folder / "a.parquet") + ":row 0"),
                         ("a.parquet:row-1", "x1", str(folder / "a.parquet") + ":row 1"),
                         ("b.parquet:row-0", "y0", str(folder / "b.parquet") + ":row 0")]
    assert found[3][:2] == ("error", str(folder / "c.parquet")) and 'string column "text"' in found[3][2]
    assert found[4][:2] == ("error", str(folder / "d.parquet")) and "strings or integers" in found[4][2]


def test_fetch_reads_what_scan_reads_in_every_format(tmp_path, monkeypatch):
    folder = tmp_path / "notes"
    folder.mkdir()
    for name, text in TEXTS.items():
        (folder / f"{name}.txt").write_bytes(text.encode("utf-8"))
    (folder / "bad.md").write_bytes(b"caf\xe9")
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("\n".join([json.dumps({"id": k, "text": v}) for k, v in TEXTS.items()]
                               + ["", "{oops", json.dumps({"text": "no id"})]) + "\n", encoding="utf-8")
    parquet = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": list(TEXTS), "text": list(TEXTS.values())}), parquet, row_group_size=1)
    monkeypatch.setattr(corpus_module, "_SPAN_SLACK", 0)  # JSONL lines read one by one and in runs
    for source in (folder, jsonl, parquet):
        corpus = Corpus.open(source)
        full = list(corpus.scan())
        index = list(corpus.scan(with_text=False))
        documents = [d for d in index if isinstance(d, SourceDocument)]
        assert all(d.text is None for d in documents)
        fetched = corpus.fetch(documents[::-1])[::-1]  # any order
        # The same documents and the same errors, whether read at once or indexed then fetched.
        assert [f for f in full if isinstance(f, SourceDocument)] == \
            [f for f in fetched if isinstance(f, SourceDocument)]
        assert [f for f in full if isinstance(f, SourceError)] == \
            [f for f in index + fetched if isinstance(f, SourceError)]
    assert ("tides.txt", TEXTS["tides"].replace("\r\n", "\n"), str(folder / "tides.txt")) \
        in items(Corpus.open(folder))  # universal newlines, as Python reads text files
    assert ("error", str(folder / "bad.md"), "not UTF-8 text (unexpected end of data at byte 3)") \
        in items(Corpus.open(folder))
    found = items(Corpus.open(jsonl))
    assert found[-2][:2] == ("error", f"{jsonl}:5") and found[-1] == ("line-6", "no id", f"{jsonl}:6")


def test_input_that_is_no_corpus_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"input not found: .*nowhere"):
        Corpus.open(tmp_path / "nowhere")
    (tmp_path / "notes.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"a folder, a \.jsonl file or a \.parquet file: .*notes\.csv"):
        Corpus.open(tmp_path / "notes.csv")
    with pytest.raises(ValueError, match="cannot open"):
        Corpus.open("file:///a path with spaces/x.jsonl")


def test_uri_input_and_output_with_search(minilm_path, tmp_path, capsys):
    source = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": list(TEXTS), "text": list(TEXTS.values())}), source)
    out = f"file://{tmp_path}/store"
    assert main(["embed", f"file://{source}", "--out", out, "--model", minilm_path, "--quiet",
                 "--chunk-size", "8"]) == 0
    stored = load_embeddings(out)
    assert sorted(stored.doc_ids) == sorted(TEXTS)
    for doc_id, (start, end), text in zip(stored.chunk_doc_ids, stored.chunk_offsets, stored.chunk_texts,
                                          strict=True):
        assert TEXTS[doc_id][start:end] == text
    capsys.readouterr()
    assert main(["search", out, "What does Ardenvale export?", "--json", "--top-k", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"][0]["doc_id"] == "saffron"


def _doc(dim: int = 4, chunks: int = 2) -> LateChunkedDocument:
    vector = np.eye(dim, dtype=np.float32)[0]
    return LateChunkedDocument("abcd", vector, [Chunk("ab", 2 * j, 2 * j + 2, vector) for j in range(chunks)],
                               num_tokens=4, num_windows=1)


def test_store_commits_each_document_once_and_removes_what_no_part_owns(tmp_path):
    out = tmp_path / "store"
    store = EmbeddingStore.open(out, {"model": "m"})
    store.create(dimension=4)
    assert write_part(out, "part-00000", ["x", "y"], [_doc(), _doc()]) == 4
    store.commit("part-00000", ["x", "y"])
    with pytest.raises(ValueError, match="repeats stored documents"):
        store.commit("part-00001", ["y", "z"])  # y is stored already
    with pytest.raises(ValueError, match="repeats stored documents"):
        store.commit("part-00000", ["z"])  # the name is taken
    orphan = "part-0123456789abcdef0123"
    write_part(out, orphan, ["z"], [_doc()])  # written, never committed (its job died)
    (out / "part-00002.chunks.parquet.0123456789ab.tmp").write_bytes(b"half")
    (out / f"{MANIFEST}.0123456789ab.tmp").write_bytes(b"half")
    # Files the store did not write stay, whatever their names.
    (out / "notes.txt").write_text("the user's own file")
    (out / "part-1.parquet").write_bytes(b"the user's own table")
    resumed = EmbeddingStore.open(out, {"model": "m"})
    assert resumed.done == {"x", "y"}
    assert resumed.remove_uncommitted() == ["manifest.json.0123456789ab.tmp",
                                            "part-00002.chunks.parquet.0123456789ab.tmp",
                                            f"{orphan}.chunks.parquet", f"{orphan}.documents.parquet"]
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json", "notes.txt", "part-00000.chunks.parquet", "part-00000.documents.parquet",
        "part-1.parquet"]
    assert load_embeddings(out).doc_ids == ["x", "y"]
    with pytest.raises(ValueError, match=r"other settings \(model\)"):
        EmbeddingStore.open(out, {"model": "other"})


@pytest.mark.parametrize("adaptive", [False, True])
def test_adaptive_commits_write_the_manifest_less_often_and_flush_the_rest(tmp_path, monkeypatch, adaptive):
    from dewey_core import store as store_module

    writes = []

    def slow_write(out, manifest):  # a manifest write that takes 100 ms: wait 1 s before the next
        time.sleep(0.1)
        writes.append(len(manifest["parts"]))
        real_write(out, manifest)

    real_write = store_module.write_manifest
    monkeypatch.setattr(store_module, "write_manifest", slow_write)
    out = tmp_path / "store"
    store = EmbeddingStore.open(out, {"model": "m"}, adaptive_commits=adaptive)
    store.create(dimension=4)
    for i in range(20):
        store.commit(f"part-{i}", [f"d{i}"])
    on_disk = len(json.loads((out / MANIFEST).read_text())["parts"])
    store.flush()
    assert len(json.loads((out / MANIFEST).read_text())["parts"]) == 20
    if adaptive:
        assert on_disk < 20 and len(writes) < 5
    else:  # the single-machine command: every commit is written at once
        assert on_disk == 20 and writes == list(range(21))


def test_plain_embed_never_imports_ray(minilm_path, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text(TEXTS["saffron"])
    code = ("import sys, json; import dewey_core, dewey_core.distributed; from dewey_core.cli import main; "
            f"rc = main(['embed', {str(tmp_path / 'notes')!r}, '--out', {str(tmp_path / 'out')!r}, "
            f"'--model', {minilm_path!r}, '--quiet']); "
            "print(json.dumps([rc, sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [0, []]


def test_ray_options_without_ray_are_refused(capsys, tmp_path):
    assert main(["embed", str(tmp_path), "--out", str(tmp_path / "o"), "--gpus-per-worker", "1"]) == 2
    assert "--gpus-per-worker only apply with --ray" in capsys.readouterr().err



def test_an_output_folder_the_store_did_not_write_is_refused_untouched(tmp_path):
    # A Spark-style dataset's files look like parts; a folder without a manifest is never cleaned.
    folder = tmp_path / "table"
    folder.mkdir()
    for name in ("part-00000-1f2e.snappy.parquet", "part-00001.chunks.parquet"):
        pq.write_table(pa.table({"text": ["one"]}), folder / name)
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(ValueError, match="holds files but no dewey manifest"):
        EmbeddingStore.open(folder, {"model": "m"})
    with pytest.raises(ValueError, match="is inside the input"):
        EmbeddingStore.open(folder, {"model": "m"}, source=Corpus.open(folder).location)
    with pytest.raises(ValueError, match="is inside the input"):
        EmbeddingStore.open(folder / "emb", {"model": "m"}, source=Corpus.open(folder).location)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        EmbeddingStore.open(tmp_path / "file", {"model": "m"})
    assert sorted(p.name for p in folder.iterdir()) == before
    EmbeddingStore.open(tmp_path / "empty", {"model": "m"}).create(4)  # new (or empty) folders are fine


def test_folders_follow_links_once_and_name_what_they_leave_out(tmp_path):
    shared, notes = tmp_path / "shared", tmp_path / "notes"
    shared.mkdir()
    notes.mkdir()
    (shared / "b.txt").write_text("Its economy depends on saffron.")
    (notes / "a.md").write_text("Ardenvale lies in the hills.")
    (notes / "shared").symlink_to(shared)  # a linked folder is read ...
    (shared / "loop").symlink_to(notes)  # ... and a link back is not read twice
    (notes / "broken.txt").symlink_to(tmp_path / "gone.txt")  # reported, not skipped
    (notes / "table.parquet").write_bytes(b"not read: the folder holds text files")
    corpus = Corpus.open(notes)
    found = items(corpus)
    assert [f[0] for f in found] == ["a.md", "error", "shared/b.txt"]
    assert found[1][1].endswith("broken.txt")
    assert corpus.ignored == ["table.parquet"]
    note = corpus_module.ignored_note(corpus)
    assert "1 files of" in note and "(1 .parquet)" in note


def test_ids_and_texts_that_are_not_unicode_are_named_and_skipped(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "ok", "text": "fine"}\n{"id": "cut", "text": "an emoji cut \\ud83d"}\n'
                    '{"id": "\\udce9", "text": "bad id"}\n')
    found = items(Corpus.open(path))
    assert found[0] == ("ok", "fine", f"{path}:1")
    assert found[1][:2] == ("error", f"{path}:2") and "its text holds '\\ud83d'" in found[1][2]
    assert found[2][:2] == ("error", f"{path}:3") and "its id" in found[2][2]
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "good.txt").write_text("good")
    bad_name = os.fsdecode(b"caf\xe9.txt")  # a Latin-1 file name: not UTF-8
    (folder / bad_name).write_text("bad name")
    found = items(Corpus.open(folder))
    assert found[0][0] == "error" and "not UTF-8" in found[0][2] and found[1][0] == "good.txt"

"""``dewey embed`` and ``dewey search`` on MiniLM: Parquet output, resumption, unreadable input."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from dewey_core import DeweyEncoder
from dewey_core.cli import main
from dewey_core.commands.embed import load_embeddings

TEXTS = {
    "ardenvale.txt": "Ardenvale lies in the northern hills.\n\nIts economy depends on saffron, "
                     "which merchants carry to distant markets.",
    "rust.md": "# Rust\n\nRust is a systems programming language focused on memory safety.",
    "notes/tides.txt": "The tide rises twice a day. The moon pulls the water towards it.",
    "notes/bread.md": "Bread needs flour, water, salt and yeast. The dough rests overnight.",
    "empty.txt": "",
}


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    for name, text in TEXTS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def embed(minilm_path, source, out, *extra):
    return main(["embed", str(source), "--out", str(out), "--model", minilm_path, "--quiet",
                 "--chunk-size", "16", *extra])


def test_folder_to_parquet_with_offsets_and_vectors(minilm_path, corpus, tmp_path):
    out = tmp_path / "store"
    assert embed(minilm_path, corpus, out) == 0
    stored = load_embeddings(out)
    assert sorted(stored.doc_ids) == sorted(TEXTS)
    assert stored.doc_vectors.shape == (len(TEXTS), 384)
    for doc_id, (start, end), text in zip(stored.chunk_doc_ids, stored.chunk_offsets, stored.chunk_texts,
                                          strict=True):
        assert TEXTS[doc_id][start:end] == text
    assert np.allclose(np.linalg.norm(stored.chunk_vectors, axis=1), 1.0, atol=1e-5)
    assert "empty.txt" not in stored.chunk_doc_ids  # no chunks, but its document row is stored
    table = pq.read_table(out / "part-00000.chunks.parquet")
    assert table.column_names == ["doc_id", "chunk_index", "text", "start", "end", "vector"]
    # The stored vectors are the engine's late-chunked vectors.
    doc = DeweyEncoder.from_pretrained(minilm_path, device="cpu").late_chunk(
        [TEXTS["ardenvale.txt"]], chunk_size=16)[0]
    rows = [i for i, d in enumerate(stored.chunk_doc_ids) if d == "ardenvale.txt"]
    assert np.allclose(stored.chunk_vectors[rows], doc.chunk_embeddings, atol=1e-5)


def test_unreadable_files_are_named_and_the_rest_embedded(minilm_path, corpus, tmp_path, capsys):
    (corpus / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (corpus / "gone.md").symlink_to(tmp_path / "missing.md")
    out = tmp_path / "store"
    assert embed(minilm_path, corpus, out) == 1
    err = capsys.readouterr().err
    assert "latin1.txt" in err and "not UTF-8" in err
    assert "gone.md" in err and "No such file" in err
    assert sorted(load_embeddings(out).doc_ids) == sorted(TEXTS)


def test_resume_after_interruption_loses_and_repeats_nothing(minilm_path, tmp_path, monkeypatch):
    source = tmp_path / "docs.jsonl"
    records = [{"id": f"doc-{i}", "text": f"Document {i} talks about topic number {i}. " * (i + 1)}
               for i in range(7)]
    source.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    reference = tmp_path / "reference"
    assert embed(minilm_path, source, reference, "--batch-docs", "2") == 0

    calls = []
    original = DeweyEncoder.late_chunk

    def interrupted(self, texts, *args, **kwargs):
        if not texts:  # the settings check before any output
            return original(self, texts, *args, **kwargs)
        calls.append(list(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the run dies while embedding its second batch
        return original(self, texts, *args, **kwargs)

    out = tmp_path / "store"
    monkeypatch.setattr(DeweyEncoder, "late_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        embed(minilm_path, source, out, "--batch-docs", "2")
    assert load_embeddings(out).doc_ids == ["doc-0", "doc-1"]
    (out / "part-00001.chunks.parquet").write_bytes(b"half-written")  # debris of the dead run

    calls.clear()
    def counted(self, texts, *args, **kwargs):
        if texts:
            calls.append(list(texts))
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(DeweyEncoder, "late_chunk", counted)
    assert embed(minilm_path, source, out, "--batch-docs", "2") == 0
    assert calls == [[r["text"] for r in records[2:4]], [r["text"] for r in records[4:6]],
                     [records[6]["text"]]]  # finished documents are not redone
    resumed, fresh = load_embeddings(out), load_embeddings(reference)
    assert resumed.doc_ids == fresh.doc_ids == [r["id"] for r in records]
    assert resumed.chunk_doc_ids == fresh.chunk_doc_ids and resumed.chunk_texts == fresh.chunk_texts
    assert np.allclose(resumed.chunk_vectors, fresh.chunk_vectors, atol=1e-5)

    # Running again finds everything done.
    calls.clear()
    assert embed(minilm_path, source, out, "--batch-docs", "2") == 0
    assert calls == [] and load_embeddings(out).doc_ids == fresh.doc_ids


def test_resume_with_other_settings_is_refused(minilm_path, corpus, tmp_path, capsys):
    out = tmp_path / "store"
    assert embed(minilm_path, corpus, out) == 0
    assert main(["embed", str(corpus), "--out", str(out), "--model", minilm_path, "--quiet",
                 "--chunk-size", "32"]) == 2
    assert "chunk_size" in capsys.readouterr().err


def test_bad_jsonl_lines_are_named(minilm_path, tmp_path, capsys):
    source = tmp_path / "docs.jsonl"
    source.write_text('{"id": "a", "text": "Saffron is a spice."}\n{not json}\n{"id": "b"}\n'
                      '{"id": "a", "text": "again"}\n{"text": "No id here."}\n', encoding="utf-8")
    out = tmp_path / "store"
    assert embed(minilm_path, source, out) == 1
    err = capsys.readouterr().err
    assert "docs.jsonl:2" in err and "docs.jsonl:3" in err and '"text"' in err
    assert "docs.jsonl:4: duplicate document id 'a'" in err
    assert load_embeddings(out).doc_ids == ["a", "line-5"]


def test_search_ranks_documents_and_chunks(minilm_path, corpus, tmp_path, capsys):
    out = tmp_path / "store"
    assert embed(minilm_path, corpus, out) == 0
    capsys.readouterr()
    assert main(["search", str(out), "What does Ardenvale export?", "--top-k", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["documents"][0]["doc_id"] == "ardenvale.txt"
    assert len(result["documents"]) == 3 and len(result["chunks"]) == 3
    top = result["chunks"][0]
    assert TEXTS[top["doc_id"]][top["start"]:top["end"]] == top["text"]
    assert top["score"] == pytest.approx(0.75 * top["chunk_score"] + 0.25 * top["document_score"], abs=1e-5)

    assert main(["search", str(out), "memory safe systems language"]) == 0
    text = capsys.readouterr().out
    assert text.index("Top documents:") < text.index("rust.md") < text.index("Top chunks:")


def test_search_names_a_folder_that_is_not_a_store(tmp_path, capsys):
    assert main(["search", str(tmp_path), "anything"]) == 2
    assert "no manifest.json" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--chunk-size", "0"], ["--dim", "9999"], ["--context-tokens", "5000"],
                                    ["--window-overlap", "-1"], ["--max-length", "1"]])
def test_bad_options_fail_cleanly_and_leave_the_output_usable(minilm_path, corpus, tmp_path, capsys,
                                                              option):
    out = tmp_path / "store"
    assert main(["embed", str(corpus), "--out", str(out), "--model", minilm_path, "--quiet", *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dewey embed: error: ") and "Traceback" not in err
    assert not out.exists()  # nothing written: a corrected run starts clean
    assert embed(minilm_path, corpus, out) == 0


def test_missing_model_and_bad_weight_are_one_line_errors(minilm_path, corpus, tmp_path, capsys):
    out = tmp_path / "store"
    assert main(["embed", str(corpus), "--out", str(out), "--model", str(tmp_path / "nowhere")]) == 2
    assert "dewey embed: error: " in capsys.readouterr().err and not out.exists()
    assert embed(minilm_path, corpus, out) == 0
    capsys.readouterr()
    assert main(["search", str(out), "x", "--model", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("dewey search: error: ")
    assert main(["search", str(out), "x", "--fusion-weight", "3"]) == 2
    assert "--fusion-weight must be in [0, 1], got 3.0" in capsys.readouterr().err


def test_outputs_and_models_that_do_not_fit_are_one_line_errors(minilm_path, corpus, tmp_path, capsys):
    from dewey_core.testing import tiny_encoder

    (tmp_path / "a-file").write_text("x")
    assert embed(minilm_path, corpus, tmp_path / "a-file") == 2
    assert capsys.readouterr().err.startswith("dewey embed: error: --out ")
    assert embed(minilm_path, corpus, corpus / "store") == 2  # a rerun would read the store as input
    assert "is inside the input" in capsys.readouterr().err and not (corpus / "store").exists()
    out = tmp_path / "store"
    assert embed(minilm_path, corpus, out) == 0
    capsys.readouterr()
    # Queries of another model: a different size is refused, a different name is pointed out.
    other = tiny_encoder(tmp_path / "roberta", "roberta")
    assert main(["search", str(out), "saffron", "--model", str(other)]) == 2
    err = capsys.readouterr().err
    assert "holds 384-dimensional vectors" in err and "was embedded with" in err and "Traceback" not in err
    assert main(["eval", "--out", str(tmp_path / "a-file"), "--model", minilm_path, "--tasks", "needle"]) == 2
    assert capsys.readouterr().err.startswith("dewey eval: error: ")

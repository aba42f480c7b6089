"""Bad input gets a clear error before any training step: an empty corpus, unreadable files,
a chunk-alignment teacher with another tokenizer, a step count below 1, and more."""

from __future__ import annotations

import pytest

from dewey_core.cli import main
from dewey_core.testing import tiny_dewey, tiny_stella
from dewey_core.training import CorpusError, TrainingConfig, TrainingError, train
from dewey_core.training import trainer as trainer_module


@pytest.fixture(autouse=True)
def no_step(monkeypatch):
    """Any training step fails the test: every error must come before the first one."""

    def step(self, step):
        raise AssertionError("a training step ran")

    monkeypatch.setattr(trainer_module._Run, "step", step)


@pytest.fixture
def texts(pydoc_topics):
    return [pydoc_topics["if"], pydoc_topics["while"], pydoc_topics["for"]]


def config(minilm_path, **changes) -> TrainingConfig:
    return TrainingConfig(model=minilm_path, steps=2, held_out_fraction=0.0, **changes)


def test_step_count_below_one_is_refused_first(tmp_path):
    # The settings are checked before the corpus is even looked at.
    with pytest.raises(ValueError, match="steps must be at least 1, got 0"):
        train(tmp_path / "missing", tmp_path / "out", TrainingConfig(steps=0))
    with pytest.raises(ValueError, match="chunk_size must be positive"):
        TrainingConfig(chunk_sizes=(64, 0)).check()
    with pytest.raises(ValueError, match="objective must be one of"):
        TrainingConfig(objective="contrastive").check()
    for share in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"crop_share must be in \[0, 1\]"):
            TrainingConfig(crop_share=share).check()


def test_empty_corpora(minilm_path, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="holds no documents"):
        train(tmp_path / "empty", tmp_path / "out", config(minilm_path))
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "a.txt").write_text("  \n\n ")
    with pytest.raises(CorpusError, match="holds no text"):
        train(tmp_path / "blank", tmp_path / "out", config(minilm_path))
    with pytest.raises(CorpusError, match="holds no text"):
        train([], tmp_path / "out", config(minilm_path))
    with pytest.raises(CorpusError, match="not found"):
        train(tmp_path / "nowhere", tmp_path / "out", config(minilm_path))


def test_unreadable_files_are_all_named(minilm_path, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text("A readable document about loops.")
    (folder / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (folder / "also-bad.md").write_bytes(b"\xff\xfe\x00broken")
    with pytest.raises(CorpusError) as info:
        train(folder, tmp_path / "out", config(minilm_path))
    message = str(info.value)
    assert "latin1.txt" in message and "also-bad.md" in message and "not UTF-8" in message
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text('{"text": "fine"}\n{"text": 3}\nnot json\n')
    with pytest.raises(CorpusError, match=r"docs.jsonl:2.*\n.*docs.jsonl:3"):
        train(jsonl, tmp_path / "out", config(minilm_path))
    assert not (tmp_path / "out").exists()


def test_chunk_alignment_needs_the_students_tokenizer(minilm_path, texts, tmp_path):
    stella = str(tiny_stella(tmp_path / "stella"))
    with pytest.raises(TrainingError, match=r"tokenizer.*objective='distillation'"):
        train(texts, tmp_path / "out", config(minilm_path, teacher=stella))
    assert not (tmp_path / "out").exists()


def test_students_must_be_sentence_transformers_models(texts, tmp_path):
    dewey = str(tiny_dewey(tmp_path / "dewey"))
    with pytest.raises(TrainingError, match="dewey checkpoint"):
        train(texts, tmp_path / "out", TrainingConfig(model=dewey, steps=1, held_out_fraction=0.0))


def test_output_folders_that_hold_something_else(minilm_path, texts, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(TrainingError, match="not empty"):
        train(texts, tmp_path / "busy", config(minilm_path))
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrainingError, match="is a file"):
        train(texts, tmp_path / "file", config(minilm_path))


def test_a_corpus_too_small_to_hold_documents_out(minilm_path, tmp_path):
    with pytest.raises(CorpusError, match="cannot keep 1 held out"):
        train(["only one"], tmp_path / "out", TrainingConfig(model=minilm_path, held_out_fraction=0.5))


def test_window_settings_and_sizes_that_cannot_work(minilm_path, texts, tmp_path):
    with pytest.raises(ValueError, match="context_tokens \\+ window_overlap"):
        train(texts, tmp_path / "a", config(minilm_path, context_tokens=200, window_overlap=100))
    with pytest.raises(TrainingError, match="matryoshka dimensions \\[384\\]"):
        train(texts, tmp_path / "b", config(minilm_path, matryoshka_dims=(384,)))
    with pytest.raises(ValueError, match="plain_similarity_weight must be a number >= 0"):
        train(texts, tmp_path / "e", config(minilm_path, plain_similarity_weight=-1.0))
    with pytest.raises(ValueError, match="freeze_layers must be >= 0, got -1"):
        train(texts, tmp_path / "c", config(minilm_path, freeze_layers=-1))
    with pytest.raises(TrainingError, match="freeze_layers=6 leaves nothing to train: the student has 6"):
        train(texts, tmp_path / "d", config(minilm_path, freeze_layers=6))


def test_the_command_line_reports_errors_without_a_traceback(minilm_path, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", str(tmp_path / "empty"), "--out", str(tmp_path / "out"),
                 "--model", minilm_path]) == 2
    assert "dewey train: error:" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "empty"), "--out", str(tmp_path / "out"), "--steps", "0"]) == 2
    assert "steps must be at least 1" in capsys.readouterr().err


def test_a_text_held_out_under_one_id_is_not_trained_on_under_another():
    from dewey_core.training.corpus import Document, split_corpus

    docs = [Document(f"doc-{i}", f"text {i}") for i in range(8)]
    copies = [Document(f"copy-of-{d.doc_id}", d.text) for d in docs]
    split = split_corpus(docs + copies, 0.25, seed=0)
    held = {d.text for d in split.held_out}
    assert held and not held & {d.text for d in split.train}
    assert len(split.train) + len(split.held_out) < len(docs + copies)  # the copies were dropped
    with pytest.raises(CorpusError, match="also held out"):
        split_corpus([Document("a", "same"), Document("b", "same")], 0.5, seed=0)

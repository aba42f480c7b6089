"""``train`` end to end on MiniLM with a few steps: the saved folder loads everywhere, the report
is complete, the held-out documents are never trained on, and a resumed run equals an
uninterrupted one."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dewey_core import DeweyEncoder
from dewey_core.training import TrainingConfig, TrainingError, train
from dewey_core.training import trainer as trainer_module

# Short reference topics (100-450 tokens; several take two MiniLM windows).
TOPICS = ("if", "while", "for", "assert", "break", "del", "exceptions", "return", "global", "yield",
          "continue", "pass")


@pytest.fixture(scope="module")
def corpus(pydoc_topics):
    return {k: pydoc_topics[k] for k in TOPICS}


def small(minilm_path, **changes) -> TrainingConfig:
    settings = dict(model=minilm_path, steps=6, windows_per_step=2, chunk_sizes=(32, 64),
                    held_out_fraction=0.25, save_every=3, eval_chunk_size=64, learning_rate=5e-5)
    return TrainingConfig(**{**settings, **changes})


@pytest.fixture(scope="module")
def trained(minilm_path, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "model"
    seen = []
    original = trainer_module.DocumentPlans.plan

    def spy(self, doc, chunk_size=None, end=None):  # every document (or opening) a step draws
        seen.append(self.documents[doc].doc_id)
        return original(self, doc, chunk_size, end)

    trainer_module.DocumentPlans.plan = spy
    try:
        result = train(corpus, out, small(minilm_path), show_progress=False)
    finally:
        trainer_module.DocumentPlans.plan = original
    return result, set(seen)


def test_held_out_documents_are_evaluated_and_never_trained_on(trained):
    result, seen = trained
    corpus = result.report["corpus"]
    assert corpus["held_out_documents"] == 3 and corpus["train_documents"] == 9
    assert seen and not seen & set(corpus["held_out_ids"])
    assert corpus["held_out_queries"] >= 5


def test_chunks_move_towards_their_targets_on_held_out_text(trained):
    result, _ = trained
    before, after = result.report["held_out"]["before"], result.report["held_out"]["after"]
    assert before["global cosine to target"] == pytest.approx(1.0, abs=1e-5)  # teacher = start
    assert after["chunk cosine to target"] > before["chunk cosine to target"]
    assert before["plain cosine to target"] == pytest.approx(1.0, abs=1e-5)
    # The starting weights, kept, embed chunks alone; the trained weights alone stay close.
    assert after["plain cosine to target"] == pytest.approx(1.0, abs=1e-5)
    alone = result.report["trained_weights_alone"]["held_out"]
    assert 0.9 < alone["plain cosine to target"] < 1.0  # the plain term keeps chunks alone close
    assert alone["chunk cosine to target"] == pytest.approx(after["chunk cosine to target"], abs=1e-6)
    assert {"chunk", "global", "plain"} <= set(result.report["history"][-1])
    assert {"held-out retrieval: naive recall@1", "held-out retrieval: late recall@1"} <= set(after)


def test_report_files(trained):
    result, _ = trained
    work = result.model_dir / "training"
    report = json.loads((work / "report.json").read_text())
    assert [h["step"] for h in report["history"]] == list(range(1, 7))
    assert all(np.isfinite(h["loss"]) and h["loss"] == pytest.approx(sum(
        v for k, v in h.items() if k not in ("step", "loss", "lr"))) for h in report["history"])
    assert report["config"]["steps"] == 6 and report["objective"] == "chunk-alignment"
    markdown = (work / "report.md").read_text()
    assert "| chunk cosine to target |" in markdown and "![loss](loss.png)" in markdown
    assert report["plain_model"] == "plain" and "## The trained weights alone" in markdown
    assert (work / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (work / "checkpoint.pt").exists()  # removed once the model is saved


def test_saved_folder_loads_in_the_engine_and_in_sentence_transformers(trained, minilm):
    from sentence_transformers import SentenceTransformer

    out = trained[0].model_dir
    for folder in (out, out / "plain"):
        modules = json.loads((folder / "modules.json").read_text())
        assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
        assert json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"] == 256
    assert json.loads((out / "dewey.json").read_text()) == {"plain_model": "plain"}
    texts = ["What does Ardenvale export?", "The 'if' statement is used for conditional execution."]
    # sentence-transformers loads the trained weights at the top level ...
    trained_alone = DeweyEncoder.from_pretrained(out, device="cpu", plain_model=False).encode_documents(texts)
    np.testing.assert_allclose(trained_alone, SentenceTransformer(str(out), device="cpu").encode(texts),
                               atol=1e-5)
    # ... and the kept starting weights are MiniLM's, which the engine embeds whole texts with.
    np.testing.assert_allclose(SentenceTransformer(str(out / "plain"), device="cpu").encode(texts),
                               minilm.encode_documents(texts), atol=1e-5)
    np.testing.assert_allclose(DeweyEncoder.from_pretrained(out, device="cpu").encode_documents(texts),
                               minilm.encode_documents(texts), atol=1e-5)


def test_the_model_changed_and_the_adapters_load_it(trained, minilm):
    from haystack_dewey import DeweyTextEmbedder
    from langchain_dewey import DeweyEmbeddings
    from llamaindex_dewey import DeweyEmbedding

    out = str(trained[0].model_dir)
    query = "How do I leave a loop early?"
    encoder = DeweyEncoder.from_pretrained(out, device="cpu")
    text = "The break statement leaves the loop. It may only occur inside a for or while loop."
    late = encoder.late_chunk([text], chunk_size=8)[0].chunk_embeddings
    assert float((late * minilm.late_chunk([text], chunk_size=8)[0].chunk_embeddings).sum(1).min()) \
        < 0.99999  # trained, not a copy
    engine = encoder.encode_queries([query])[0]
    np.testing.assert_allclose(engine, minilm.encode_queries([query])[0], atol=1e-5)  # the plain model
    langchain = DeweyEmbeddings(model=out, device="cpu").embed_query(query)
    llamaindex = DeweyEmbedding(model_name=out, device="cpu").get_query_embedding(query)
    embedder = DeweyTextEmbedder(model=out, device="cpu")
    embedder.warm_up()
    haystack = embedder.run(text=query)["embedding"]
    for vector in (langchain, llamaindex, haystack):
        np.testing.assert_allclose(np.asarray(vector), engine, atol=1e-5)


def test_frozen_layers_keep_their_weights_and_the_rest_train(minilm_path, corpus, tmp_path):
    result = train(corpus, tmp_path / "frozen", small(minilm_path, steps=2, held_out_fraction=0.0,
                                                      freeze_layers=4, plain_model=False),
                   show_progress=False)
    assert not (result.model_dir / "plain").exists() and not (result.model_dir / "dewey.json").exists()
    assert result.report["plain_model"] is None and result.report["trained_weights_alone"] is None
    start = load_file(f"{minilm_path}/model.safetensors")
    after = load_file(str(result.model_dir / "model.safetensors"))
    changed = {k for k in after if not torch.equal(start[k], after[k])}
    assert changed and all(k.startswith(("encoder.layer.4.", "encoder.layer.5.", "pooler.")) for k in changed)
    assert any(k.startswith("encoder.layer.4.") for k in changed)


def test_the_plain_similarity_term_is_trained_when_weighted(minilm_path, corpus, tmp_path):
    result = train(corpus, tmp_path / "structure", small(minilm_path, steps=2, held_out_fraction=0.0,
                                                         plain_similarity_weight=200.0), show_progress=False)
    history = result.report["history"]
    assert all(step["plain similarity"] > 0 for step in history)
    assert all(step["loss"] >= step["plain similarity"] + step["plain"] for step in history)


def test_a_finished_run_is_not_overwritten(trained, corpus, minilm_path):
    with pytest.raises(TrainingError, match="already holds a finished training run"):
        train(corpus, trained[0].model_dir, small(minilm_path), show_progress=False)


def _weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def interrupt_at(monkeypatch, at: int):
    """Make step ``at`` raise KeyboardInterrupt; returns the real step (to put back)."""
    real_step = trainer_module._Run.step

    def interrupted(self, step):
        if step == at:
            raise KeyboardInterrupt
        return real_step(self, step)

    monkeypatch.setattr(trainer_module._Run, "step", interrupted)
    return real_step


def test_an_interrupted_run_resumes_to_the_same_model(minilm_path, corpus, tmp_path, monkeypatch):
    config = small(minilm_path, steps=3, save_every=2, held_out_fraction=0.0)
    straight = train(corpus, tmp_path / "straight", config, show_progress=False)

    real_step = interrupt_at(monkeypatch, 2)  # after the checkpoint at step 2
    with pytest.raises(KeyboardInterrupt):
        train(corpus, tmp_path / "resumed", config, show_progress=False)
    assert (tmp_path / "resumed" / "training" / "checkpoint.pt").is_file()
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    with pytest.raises(TrainingError, match="learning_rate"):
        train(corpus, tmp_path / "resumed", small(minilm_path, steps=3, save_every=2,
                                                   held_out_fraction=0.0, learning_rate=1e-4))
    monkeypatch.setattr(trainer_module._Run, "step", real_step)
    # Keeping the starting weights or not changes what is saved, not the steps: it may change.
    resumed = train(corpus, tmp_path / "resumed", dataclasses.replace(config, plain_model=False),
                    show_progress=False)
    assert (tmp_path / "straight" / "plain").is_dir() and not (tmp_path / "resumed" / "plain").exists()

    assert [h["loss"] for h in resumed.report["history"]] == [h["loss"] for h in straight.report["history"]]
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_saved_before_crop_share_resumes_with_openings_off(minilm_path, corpus, tmp_path,
                                                                        monkeypatch):
    out = tmp_path / "run"
    config = small(minilm_path, steps=2, save_every=1, held_out_fraction=0.0, crop_share=0.0)
    interrupt_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train(corpus, out, config, show_progress=False)
    path = out / "training" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    del state["config"]["crop_share"]  # as saved before the setting existed
    torch.save(state, path)
    with pytest.raises(TrainingError, match="crop_share"):
        train(corpus, out, dataclasses.replace(config, crop_share=0.25), show_progress=False)
    monkeypatch.undo()
    assert len(train(corpus, out, config, show_progress=False).report["history"]) == 2


def test_any_splitter_gives_the_chunks(minilm_path, corpus, tmp_path):
    calls = []

    def paragraphs(text):
        calls.append(text)
        spans, at = [], 0
        for part in text.split("\n\n"):
            if part.strip():
                spans.append((at, at + len(part)))
            at += len(part) + 2
        return spans

    result = train(corpus, tmp_path / "split", small(minilm_path, steps=1), splitter=paragraphs,
                   show_progress=False)
    assert set(calls) >= set(corpus.values())  # every document, training and held out
    assert result.report["held_out"]["after"]["chunk cosine to target"] > 0


def sentences(text):
    """A splitter whose chunks leave the spaces between sentences out."""
    return [m.span() for m in re.finditer(r"\S[^.!?]*[.!?]?", text)]


def test_a_splitter_that_leaves_gaps_trains_and_resumes_only_with_itself(minilm_path, corpus, tmp_path,
                                                                         monkeypatch):
    result = train(corpus, tmp_path / "gaps", small(minilm_path, steps=1), splitter=sentences,
                   show_progress=False)
    assert result.report["splitter"] == "sentences" and result.report["corpus"]["held_out_queries"] > 0
    real_step = interrupt_at(monkeypatch, 1)  # after the checkpoint at step 1
    config = small(minilm_path, steps=2, save_every=1, held_out_fraction=0.0)
    with pytest.raises(KeyboardInterrupt):
        train(corpus, tmp_path / "resumed", config, splitter=sentences, show_progress=False)
    monkeypatch.setattr(trainer_module._Run, "step", real_step)
    with pytest.raises(TrainingError, match="another split or chunking"):  # the chunks would change
        train(corpus, tmp_path / "resumed", config, show_progress=False)


def test_the_command_line_trains_a_folder_corpus(minilm_path, corpus, tmp_path, capsys):
    from dewey_core.cli import main

    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in corpus.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    code = main(["train", str(folder), "--out", str(tmp_path / "cli"), "--model", minilm_path,
                 "--steps", "1", "--windows-per-step", "1", "--chunk-size", "32", "--held-out", "0",
                 "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "# Training report: chunk-alignment" in captured.out
    assert "No documents were held out" in captured.out
    assert DeweyEncoder.from_pretrained(tmp_path / "cli", device="cpu").dimension == 384

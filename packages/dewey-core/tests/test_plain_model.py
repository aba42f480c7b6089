"""A model folder that keeps its starting weights beside trained ones (``dewey.json`` names
them, as ``dewey train`` writes it): queries and whole texts are embedded with the plain model,
late chunking runs the trained weights, and a folder that names a missing or mismatched plain
model is refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from dewey_core import DeweyEncoder
from dewey_core.testing import tiny_encoder

TEXTS = ["The 'while' statement repeats a block while its condition is true.",
         "Saffron is harvested by hand from crocus flowers."]


@pytest.fixture(scope="module")
def paired(minilm_path, tmp_path_factory) -> Path:
    """MiniLM with its last layer perturbed at the top level, the real MiniLM in ``plain/``."""
    root = tmp_path_factory.mktemp("paired") / "model"
    shutil.copytree(minilm_path, root)
    shutil.copytree(minilm_path, root / "plain")
    state = load_file(str(root / "model.safetensors"))
    generator = torch.Generator().manual_seed(0)
    for key in [k for k in state if k.startswith("encoder.layer.5.") and k.endswith("weight")]:
        state[key] = state[key] + 0.05 * torch.randn(state[key].shape, generator=generator)
    save_file(state, str(root / "model.safetensors"), metadata={"format": "pt"})
    (root / "dewey.json").write_text(json.dumps({"plain_model": "plain"}))
    return root


def test_queries_and_texts_use_the_plain_model_and_late_chunking_the_trained_one(paired, minilm,
                                                                                   pydoc_topics):
    enc = DeweyEncoder.from_pretrained(paired, device="cpu")
    alone = DeweyEncoder.from_pretrained(paired, device="cpu", plain_model=False)
    assert enc.plain_model is not None and alone.plain_model is None
    assert "plain_model=" in repr(enc) and "plain_model=" not in repr(alone)
    np.testing.assert_allclose(enc.encode_queries(TEXTS), minilm.encode_queries(TEXTS), atol=1e-6)
    np.testing.assert_allclose(enc.encode_documents(TEXTS), minilm.encode_documents(TEXTS), atol=1e-6)
    # The trained weights differ from the plain ones, and late chunking runs them.
    assert float((alone.encode_documents(TEXTS) * minilm.encode_documents(TEXTS)).sum(1).min()) < 0.999
    text = pydoc_topics["while"]
    ours, trained = enc.late_chunk([text], chunk_size=32)[0], alone.late_chunk([text], chunk_size=32)[0]
    np.testing.assert_allclose(ours.chunk_embeddings, trained.chunk_embeddings, atol=1e-6)
    np.testing.assert_allclose(ours.global_embedding, trained.global_embedding, atol=1e-6)
    untrained = minilm.late_chunk([text], chunk_size=32)[0]
    assert not np.allclose(ours.chunk_embeddings, untrained.chunk_embeddings, atol=1e-3)


def _with_config(paired: Path, tmp_path: Path, config: str) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(paired, folder, ignore=shutil.ignore_patterns("plain"))
    (folder / "dewey.json").write_text(config)
    return folder


@pytest.mark.parametrize(("config", "message"), [
    ("{not json", "is not readable JSON"),
    ('["plain"]', "must hold a JSON object"),
    ('{"plain_model": "plain", "teacher": "x"}', r"unknown keys \['teacher'\]"),
    ('{"plain_model": "../elsewhere"}', "must name a folder inside"),
    ('{"plain_model": "missing"}', "names the plain model folder 'missing'"),
])
def test_a_bad_dewey_json_is_refused_by_name(paired, tmp_path, config, message):
    folder = _with_config(paired, tmp_path, config)
    with pytest.raises(ValueError, match=message):
        DeweyEncoder.from_pretrained(folder, device="cpu")
    # Told to ignore the plain model, the folder loads as the trained weights alone.
    assert DeweyEncoder.from_pretrained(folder, device="cpu", plain_model=False).plain_model is None


def test_a_plain_model_that_does_not_match_is_refused(paired, tmp_path):
    folder = _with_config(paired, tmp_path, json.dumps({"plain_model": "other"}))
    tiny_encoder(folder / "other", "roberta")
    with pytest.raises(ValueError, match=r"does not match .*dimension.*vocabulary"):
        DeweyEncoder.from_pretrained(folder, device="cpu")


def test_verify_checkpoint_checks_the_trained_weights_too(paired, tmp_path, capsys):
    from dewey_core.cli import main

    assert main(["verify-checkpoint", str(paired), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"plain model  {paired / 'plain'}" in out and "PASS   trained" in out and "PASS   plain" in out
    # Broken trained weights fail the check even though the plain model answers queries well.
    broken = tmp_path / "broken"
    shutil.copytree(paired, broken)
    state = load_file(str(broken / "model.safetensors"))
    key = "encoder.layer.5.output.dense.weight"
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, str(broken / "model.safetensors"), metadata={"format": "pt"})
    assert main(["verify-checkpoint", str(broken), "--device", "cpu"]) == 1
    assert "finite       no" in capsys.readouterr().out


def test_training_from_a_paired_folder_is_refused(paired, pydoc_topics, tmp_path):
    from dewey_core.training import TrainingConfig, TrainingError, train

    corpus = [pydoc_topics["if"], pydoc_topics["while"]]
    for role, config in (("student", TrainingConfig(model=str(paired), steps=1, held_out_fraction=0.0)),
                         ("teacher", TrainingConfig(model=str(paired / "plain"), teacher=str(paired),
                                                    steps=1, held_out_fraction=0.0))):
        with pytest.raises(TrainingError, match=f"the {role} .* keeps its starting weights in .*plain"):
            train(corpus, tmp_path / role, config, show_progress=False)


def test_dewey_embed_late_chunks_with_the_trained_weights_and_search_asks_with_the_plain_ones(
        paired, minilm, tmp_path, capsys):
    from dewey_core.cli import main
    from dewey_core.embed_job import EmbedOptions
    from dewey_core.store import load_embeddings

    corpus = tmp_path / "docs"
    corpus.mkdir()
    for i, text in enumerate(TEXTS):
        (corpus / f"{i}.txt").write_text(text)
    assert EmbedOptions(model=str(paired)).load_encoder().plain_model is None  # it only late-chunks
    out = tmp_path / "store"
    assert main(["embed", str(corpus), "--out", str(out), "--model", str(paired), "--quiet",
                 "--chunk-size", "8"]) == 0
    stored = load_embeddings(out)
    late = DeweyEncoder.from_pretrained(paired, device="cpu").late_chunk(TEXTS, chunk_size=8)
    np.testing.assert_allclose(stored.chunk_vectors, np.concatenate([d.chunk_embeddings for d in late]),
                               atol=1e-5)
    capsys.readouterr()
    assert main(["search", str(out), "Which spice is picked by hand?", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["chunks"][0]
    row = next(i for i, (d, c) in enumerate(zip(stored.chunk_doc_ids, stored.chunk_index, strict=True))
           if d == top["doc_id"] and c == top["chunk_index"])
    query = minilm.encode_queries(["Which spice is picked by hand?"])[0]  # the plain model's query
    assert top["chunk_score"] == pytest.approx(float(stored.chunk_vectors[row] @ query), abs=1e-5)

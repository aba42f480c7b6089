"""Teacher distillation (the Jasper recipe) on CPU at test size: MiniLM learns a larger
teacher's vectors, through a projection to the teacher's size that is saved as a Dense module."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dewey_core import DeweyEncoder
from dewey_core.loading import resolve_model_dir
from dewey_core.models import load_model
from dewey_core.testing import tiny_stella
from dewey_core.training import TrainingConfig, TrainingError, train
from dewey_core.training.export import save_sentence_transformer

TOPICS = ("if", "while", "for", "assert", "break", "del", "exceptions", "return", "global", "yield",
          "continue", "pass")


@pytest.fixture(scope="module")
def corpus(pydoc_topics):
    return {k: pydoc_topics[k] for k in TOPICS}


@pytest.fixture(scope="module")
def wide_teacher(minilm_path, tmp_path_factory):
    """A 768-d teacher: MiniLM with a fixed random Dense head and tanh (another space)."""
    model = load_model(resolve_model_dir(minilm_path), torch.device("cpu"), torch.float32)
    torch.manual_seed(7)
    head = torch.nn.Sequential(torch.nn.Linear(384, 768), torch.nn.Tanh())
    out = tmp_path_factory.mktemp("teacher")
    save_sentence_transformer(model, [head], out, max_length=256)
    return str(out)


def distill(minilm_path, teacher, out, **changes):
    settings = dict(model=minilm_path, teacher=teacher, objective="distillation", steps=12,
                    batch_size=8, chunk_sizes=(32, 64), held_out_fraction=0.25, eval_chunk_size=64)
    return train(dict(changes.pop("corpus")), out, TrainingConfig(**{**settings, **changes}),
                 show_progress=False)


@pytest.fixture(scope="module")
def distilled(minilm_path, wide_teacher, corpus, tmp_path_factory):
    return distill(minilm_path, wide_teacher, tmp_path_factory.mktemp("distilled") / "model",
                   corpus=corpus, matryoshka_dims=(128,))


def test_the_student_moves_towards_the_teacher_on_held_out_text(distilled):
    before = distilled.report["held_out"]["before"]["cosine to teacher"]
    after = distilled.report["held_out"]["after"]["cosine to teacher"]
    assert before < 0.05 and after > before + 0.1, (before, after)  # a fresh projection starts at ~0
    history = distilled.report["history"]
    assert {"cosine", "similarity", "relative", "matryoshka"} <= set(history[0])


def test_the_projection_is_saved_as_a_dense_module(distilled):
    from sentence_transformers import SentenceTransformer

    out = distilled.model_dir
    modules = json.loads((out / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Dense", "Normalize"]
    dense = json.loads((out / "2_Dense" / "config.json").read_text())
    assert (dense["in_features"], dense["out_features"]) == (384, 768)
    assert distilled.report["projection"] == {"in": 384, "out": 768, "kept": True}
    student = DeweyEncoder.from_pretrained(out, device="cpu")
    assert student.dimension == 768
    texts = ["A loop runs while its condition holds.", "Saffron is a spice."]
    np.testing.assert_allclose(student.encode_documents(texts),
                               SentenceTransformer(str(out), device="cpu").encode(texts), atol=1e-5)
    # Matryoshka: a truncated vector is a valid embedding of the same size asked for.
    assert student.encode_documents(texts, dim=128).shape == (2, 128)


def test_a_teacher_with_another_tokenizer_and_the_projection_dropped(minilm_path, corpus, tmp_path):
    stella = str(tiny_stella(tmp_path / "stella"))  # Qwen BPE, 64-d head
    result = distill(minilm_path, stella, tmp_path / "small", corpus=corpus, steps=3,
                     keep_projection=False)
    assert result.report["projection"] == {"in": 384, "out": 64, "kept": False}
    held_out = result.report["held_out"]
    # Measured through the projection (the teacher's space), and named so: it is not saved.
    cosine = "cosine to teacher (through the projection, not saved)"
    assert held_out["after"][cosine] > held_out["before"][cosine]
    assert DeweyEncoder.from_pretrained(result.model_dir, device="cpu").dimension == 384
    assert not (result.model_dir / "2_Dense").exists()
    with pytest.raises(TrainingError, match="does not save"):  # sizes trained in the teacher's space
        distill(minilm_path, stella, tmp_path / "sizes", corpus=corpus, steps=1, keep_projection=False,
                matryoshka_dims=(32,))

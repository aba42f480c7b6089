"""The training forward computes what ``DeweyEncoder.late_chunk`` and ``encode_documents``
compute (same tokens, chunks, windows and pooling), with gradients."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
import torch

from dewey_core import DeweyEncoder
from dewey_core.loading import resolve_model_dir
from dewey_core.models import load_model
from dewey_core.testing import tiny_encoder
from dewey_core.training.corpus import Document
from dewey_core.training.forward import TrainingForward
from dewey_core.training.sampling import DocumentPlans, draw_passages, draw_window_runs
from dewey_core.windowing import WindowPolicy


def unit(x: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(x, dim=-1).detach().numpy()


@pytest.fixture(scope="module")
def texts(pydoc_topics):
    # One window, two windows and many windows (MiniLM: 254 content tokens per window).
    return [pydoc_topics["if"], pydoc_topics["exceptions"], pydoc_topics["raise"]]


@pytest.mark.parametrize("policy", [(None, None), (8, 4)], ids=["default windows", "context 8, overlap 4"])
def test_whole_documents_match_late_chunk(minilm, texts, policy):
    forward = TrainingForward(minilm, WindowPolicy(*policy))
    plans = [forward.plan(t, chunk_size=48) for t in texts]
    assert [len(p.windows) for p in plans][:2] == [1, 2] and len(plans[2].windows) >= 4
    expected = minilm.late_chunk(texts, chunk_size=48, context_tokens=policy[0], window_overlap=policy[1])
    with torch.no_grad():
        chunks, globals_ = forward.late_chunk([p.whole() for p in plans])
    for plan, doc, c, g in zip(plans, expected, chunks, globals_, strict=True):
        assert plan.spans == [(ch.start, ch.end) for ch in doc.chunks]
        np.testing.assert_allclose(unit(c), doc.chunk_embeddings, atol=1e-5)
        np.testing.assert_allclose(unit(g), doc.global_embedding, atol=1e-5)


def test_caller_spans_match_late_chunk(minilm, texts):
    forward = TrainingForward(minilm)
    spans = [[(0, 40), (40, len(t) // 2), (len(t) // 2, len(t))] for t in texts]
    expected = minilm.late_chunk(texts, spans=spans)
    with torch.no_grad():
        runs = [forward.plan(t, spans=s).whole() for t, s in zip(texts, spans, strict=True)]
        chunks, _ = forward.late_chunk(runs)
    for doc, c in zip(expected, chunks, strict=True):
        np.testing.assert_allclose(unit(c), doc.chunk_embeddings, atol=1e-5)


def test_a_run_of_windows_computes_the_chunks_inside_it(minilm, texts):
    forward = TrainingForward(minilm)
    plan = forward.plan(texts[2], chunk_size=32)
    run = plan.run(1, 3)
    low, high = plan.windows[1].kept[0], plan.windows[2].kept[1]
    assert run.chunks and all(low <= plan.ranges[j][0] and plan.ranges[j][1] <= high for j in run.chunks)
    assert not run.complete
    full = minilm.late_chunk([texts[2]], chunk_size=32)[0]
    with torch.no_grad():
        chunks, globals_ = forward.late_chunk([run])
    assert globals_ == [None]
    np.testing.assert_allclose(unit(chunks[0]), full.chunk_embeddings[run.chunks], atol=1e-5)


def test_encode_matches_encode_documents(minilm, texts):
    forward = TrainingForward(minilm)
    batch = [*texts, "Saffron is a spice.", ""]  # long texts keep their first window's tokens
    with torch.no_grad():
        vectors = unit(forward.encode(batch))
    np.testing.assert_allclose(vectors, minilm.encode_documents(batch), atol=1e-5)


def test_gradients_reach_every_layer(minilm_path, texts):
    model = load_model(resolve_model_dir(minilm_path), torch.device("cpu"), torch.float32)
    forward = TrainingForward(DeweyEncoder(model))
    chunks, _ = forward.late_chunk([forward.plan(texts[1], chunk_size=64).run(1, 2)])
    chunks[0].sum().backward()
    names = [n for n, p in model.backbone.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    # Only the pooler head (unused by mean pooling) gets no gradient.
    assert all(n.startswith("pooler.") for n in names), names


def test_draws_are_seeded_and_fill_the_step(minilm, pydoc_topics):
    forward = TrainingForward(minilm)
    docs = [Document(k, pydoc_topics[k]) for k in ("if", "exceptions", "raise", "try")]
    plans = DocumentPlans(forward, docs, (32, 64))

    def draw(seed):
        return [(r.plan.text[:20], r.first, r.last, tuple(r.chunks))
                for r in draw_window_runs(plans, 4, random.Random(seed))]

    assert draw(3) == draw(3)
    assert len({tuple(draw(seed)) for seed in range(10)}) > 1
    for seed in range(10):
        runs = draw_window_runs(plans, 4, random.Random(seed))
        assert sum(r.num_windows for r in runs) <= 4 and all(r.chunks for r in runs)
    passages = draw_passages(plans, 6, random.Random(0))
    assert len(passages) == len(set(passages)) == 6
    assert all(any(p in d.text for d in docs) for p in passages)


def test_openings_are_whole_short_documents_cut_at_sentences(minilm, pydoc_topics):
    forward = TrainingForward(minilm)
    docs = [Document(k, pydoc_topics[k]) for k in ("if", "exceptions", "raise", "try")]
    plans = DocumentPlans(forward, docs, (32, 64))
    rng = random.Random(0)
    ends = set()
    for _ in range(40):
        doc = rng.randrange(len(docs))
        plan = plans.opening(doc, 32, rng)
        full = docs[doc].text
        assert full.startswith(plan.text) and len(plan.windows) == 1
        assert len(plan.tok) >= 64 or plan.text == full  # at least twice the smallest chunk size
        rest = full[len(plan.text):]
        after_sentence = plan.text[-1] in ".!?:;" and rest[:1].isspace()
        after_paragraph = re.match(r"\n\s*\n", rest) is not None
        whole_window = len(plan.tok) == plans.plan(doc, 32).windows[0].kept[1]
        assert not rest or after_sentence or after_paragraph or whole_window, plan.text[-40:]
        ends.add((doc, len(plan.text)))
    assert len(ends) > 10  # openings of many lengths
    # A share of 1 draws only openings, each trained whole; 0 never draws one.
    runs = draw_window_runs(plans, 6, random.Random(1), crop_share=1.0)
    assert len(runs) == 6 and all(r.complete and r.num_windows == 1 for r in runs)
    for seed in range(5):
        plain = draw_window_runs(plans, 6, random.Random(seed), crop_share=0.0)
        assert all(r.plan.text in {d.text for d in docs} for r in plain)


@pytest.mark.parametrize("tokenizer", ["wordpiece (minilm)", "byte-level bpe (roberta)"])
def test_an_opening_keeps_its_documents_first_tokens(tokenizer, minilm, pydoc_topics, tmp_path):
    # Cut after a sentence, the opening tokenises as the document's first tokens: none is split
    # or lost at the cut (byte-level BPE carries a word's leading space in its token).
    encoder = minilm if tokenizer.startswith("wordpiece") else DeweyEncoder.from_pretrained(
        tiny_encoder(tmp_path / "roberta", "roberta"), device="cpu")
    docs = [Document(k, pydoc_topics[k]) for k in ("exceptions", "raise", "try")]
    plans = DocumentPlans(TrainingForward(encoder), docs, (16, 32))
    rng = random.Random(0)
    for _ in range(30):
        doc = rng.randrange(len(docs))
        opening, full = plans.opening(doc, 16, rng), plans.plan(doc, 16)
        n = len(opening.tok)
        assert 0 < n < len(full.tok) and opening.tok.ids == full.tok.ids[:n]
        assert opening.tok.ends == full.tok.ends[:n]

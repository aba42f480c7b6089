"""Batch planning, windowing and scoring helpers."""

from __future__ import annotations

import numpy as np
import pytest

from dewey_core import (
    cosine_from_scores,
    fuse,
    rank_chunk_scores,
    rank_chunks,
    rank_document_scores,
    rank_documents,
)
from dewey_core.batching import plan_batches
from dewey_core.tokenization import TokenizedText
from dewey_core.windowing import WindowPolicy, plan_windows


@pytest.mark.parametrize("padded", [True, False])
def test_batches_cover_every_index_once_within_budget(padded):
    lengths = list(np.random.default_rng(1).integers(1, 300, size=200))
    batches = plan_batches(lengths, 1024, padded=padded)
    assert sorted(i for b in batches for i in b) == list(range(200))
    for b in batches:
        cost = len(b) * max(lengths[i] for i in b) if padded else sum(lengths[i] for i in b)
        assert cost <= 1024 or len(b) == 1


def test_oversized_sequence_gets_its_own_batch():
    assert plan_batches([5000, 10, 10], 100, padded=True) == [[0], [1, 2]]


def tokens(n: int) -> TokenizedText:
    return TokenizedText((), tuple(range(1000, 1000 + n)), tuple(range(n)), tuple(range(1, n + 1)))


@pytest.mark.parametrize(("n", "context", "overlap"), [(10, 4, 2), (100, 8, 4), (100, 0, 0), (57, 0, 6)])
def test_windows_keep_each_token_exactly_once(n, context, overlap):
    windows = plan_windows(0, tokens(n), (1,), (2,), 22, WindowPolicy(context, overlap))
    kept = [i for w in windows for i in range(*w.kept)]
    assert kept == list(range(n))
    for w in windows:
        assert len(w.ids) <= 22 and w.ids[0] == 1 and w.ids[-1] == 2
        first, last = w.kept
        start = w.layout.kept_start
        assert w.ids[start : start + last - first] == [1000 + i for i in range(first, last)]
    for w in windows[1:]:  # every later window starts with the document's opening
        lead = w.ids[1 : 1 + min(context, w.kept[0])]
        assert lead == [1000 + i for i in range(len(lead))]


def test_window_knobs_must_leave_room():
    with pytest.raises(ValueError, match="capacity"):
        plan_windows(0, tokens(100), (1,), (2,), 22, WindowPolicy(15, 5))


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_rank_documents_uses_best_chunk_and_fusion():
    query = unit([1.0, 0.0])
    chunks = unit([[0.9, 0.1], [0.2, 0.8], [0.8, 0.3]])
    docs = ["a", "a", "b"]
    no_fusion = rank_documents(query, chunks, docs, top_k=5, fusion_weight=0.0)
    assert [d.doc_id for d in no_fusion] == ["a", "b"] and no_fusion[0].best_chunk == 0
    globals_ = unit([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    fused = rank_documents(query, chunks, docs, globals_, top_k=5, fusion_weight=0.5)
    assert [d.doc_id for d in fused] == ["b", "a"]
    assert fused[0].score == pytest.approx(0.5 * fused[0].chunk_score + 0.5 * 1.0)


def test_rank_chunks_top_k_and_errors():
    chunks = unit(np.eye(3))
    hits = rank_chunks(unit([0.1, 1.0, 0.2]), chunks, [0, 1, 2], top_k=2)
    assert [h.index for h in hits] == [1, 2]
    with pytest.raises(ValueError, match="doc_ids"):
        rank_chunks(unit([1, 0, 0]), chunks, [0, 1])
    with pytest.raises(ValueError, match="fusion weight"):
        fuse(np.ones(2), np.ones(2), 1.5)


def test_max_batch_size_caps_sequences_per_batch():
    batches = plan_batches([10] * 10, 10_000, padded=True, max_batch_size=4)
    assert [len(b) for b in batches] == [4, 4, 2]
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches([1], 100, padded=True, max_batch_size=0)


def test_scoring_refuses_what_it_would_otherwise_get_wrong():
    chunks = np.stack([unit([1, 0, 0]), unit([0, 1, 0]), unit([0, 0, 1])])
    with pytest.raises(ValueError, match=r"query must be one vector, got shape \(2, 3\)"):
        rank_chunks(chunks[:2], chunks, [0, 1, 2])
    with pytest.raises(ValueError, match="top_k must be a positive int, got -1"):
        rank_chunks(chunks[0], chunks, [0, 1, 2], top_k=-1)
    with pytest.raises(ValueError, match="top_k must be a positive int, got 0"):
        rank_documents(chunks[0], chunks, [0, 1, 2], top_k=0)
    with pytest.raises(ValueError, match=r"one row per chunk \(3\), got shape \(3,\)"):
        rank_chunks(chunks[0], chunks, [0, 1, 2], chunks[0])
    assert rank_chunks(chunks[0], [], []) == [] and rank_documents(chunks[0], [], []) == []
    one_row = rank_chunks(chunks[:1], chunks, [0, 1, 2], top_k=1)  # shape (1, d) is one query
    assert [h.index for h in one_row] == [0]
    fused = fuse([0.5, 0.2], [0.1, 0.3], 0.5)
    assert fused.dtype == np.float32 and fused == pytest.approx([0.3, 0.25])
    assert fuse(np.ones(2), np.ones(2), 0.0).dtype == np.float32
    with pytest.raises(ValueError, match=r"\(2,\) global scores for \(3,\) chunk scores"):
        fuse(np.ones(3), np.ones(2), 0.0)
    with pytest.raises(TypeError, match="fusion weight must be a number"):
        fuse(np.ones(2), np.ones(2), "0.5")


def test_store_scores_convert_to_the_cosine_of_unit_vectors():
    rng = np.random.default_rng(0)
    q, x = unit(rng.normal(size=(1, 16)))[0], unit(rng.normal(size=(5, 16)))
    cosine = x @ q
    squared = np.sum((x - q) ** 2, axis=1)
    for kind, reported in (("similarity", cosine), ("cosine_distance", 1 - cosine),
                           ("l2", np.sqrt(squared)), ("squared_l2", squared)):
        np.testing.assert_allclose(cosine_from_scores(reported, kind), cosine, atol=1e-6)
    with pytest.raises(ValueError, match="unknown score kind 'manhattan'"):
        cosine_from_scores([1.0], "manhattan")


def test_ranking_from_scores_equals_ranking_from_vectors():
    rng = np.random.default_rng(1)
    query, chunks, globals_ = unit(rng.normal(size=16)), unit(rng.normal(size=(9, 16))), \
        unit(rng.normal(size=(9, 16)))
    docs = ["a", "a", "b", "b", "b", "c", "d", "d", "e"]
    for by_vectors, by_scores in ((rank_chunks, rank_chunk_scores), (rank_documents, rank_document_scores)):
        expected = by_vectors(query, chunks, docs, globals_, top_k=4, fusion_weight=0.3)
        got = by_scores(chunks @ query, docs, globals_ @ query, top_k=4, fusion_weight=0.3)
        assert [(h.doc_id, round(h.score, 5)) for h in got] == \
            [(h.doc_id, round(h.score, 5)) for h in expected]


def test_a_chunk_with_an_unknown_global_score_ranks_by_its_own_score():
    hits = rank_chunk_scores([0.5, 0.4, 0.3], ["a", "b", "c"], [None, 0.9, np.nan], top_k=3,
                             fusion_weight=0.5)
    assert [(h.doc_id, h.global_score) for h in hits] == [("b", pytest.approx(0.9)), ("a", None),
                                                          ("c", None)]
    assert hits[1].score == pytest.approx(0.5) and hits[0].score == pytest.approx(0.65)
    with pytest.raises(ValueError, match="2 doc_ids for 3 chunk scores"):
        rank_chunk_scores([0.5, 0.4, 0.3], ["a", "b"])

"""The contextual-retrieval set on MiniLM: late chunking vs naive per-chunk embeddings.

Run with ``pytest -s`` to see the table of measured numbers.
"""

from __future__ import annotations

import re

import pytest

from dewey_core.evaluation import (
    DEEP_RECALL_AT_1,
    LATE,
    LATE_FUSION,
    NAIVE,
    NDCG_AT_10,
    PLAIN,
    POSITIONS_PER_TOKEN,
    RECALL_AT_1,
    REFERENCE,
    WINDOWS,
    contextual_set,
    evaluate_contextual,
    evaluate_window_settings,
    markdown_report,
)

SHORT, LONG = 150, 1100


@pytest.fixture(scope="module")
def sets(minilm):
    return {SHORT: contextual_set(24, SHORT, seed=0, count_tokens=minilm.count_tokens),
            LONG: contextual_set(12, LONG, seed=0, count_tokens=minilm.count_tokens)}


@pytest.fixture(scope="module")
def scores(minilm, sets):
    measured = [s for data in sets.values() for s in evaluate_contextual(minilm, data)]
    print("\n" + markdown_report(measured))
    return {(s.length, s.method, s.metric): s.value for s in measured}


def test_set_is_deterministic_and_seeded():
    assert contextual_set(6, 400, seed=3) == contextual_set(6, 400, seed=3)
    assert contextual_set(6, 400, seed=3).documents != contextual_set(6, 400, seed=4).documents


def test_lengths_match_the_variants(minilm, sets):
    short = minilm.count_tokens([d.text for d in sets[SHORT].documents])
    long = minilm.count_tokens([d.text for d in sets[LONG].documents])
    assert max(short) < 256
    assert min(long) > 3 * 256


@pytest.mark.parametrize("length", [SHORT, LONG])
def test_subject_is_named_once_and_queries_need_context(sets, length):
    data = sets[length]
    assert len({d.subject for d in data.documents}) == len(data.documents)
    for doc in data.documents:
        chunks = doc.chunk_texts
        assert doc.text.count(doc.subject) == 1 and doc.subject in chunks[0]
        assert "".join(chunks) == doc.text.replace("\n\n", "")  # chunks are the paragraphs
    for query in data.queries:
        doc = data.documents[query.doc]
        assert doc.subject in query.text and query.chunk > 0
        relevant = doc.chunk_texts[query.chunk]
        assert not any(other.subject in relevant for other in data.documents)
    # Every document states every kind of fact, so each fact has a distractor per other document.
    facts = {q.fact for q in data.queries}
    assert len(data.queries) == len(facts) * len(data.documents)


def test_each_answer_belongs_to_one_document(sets):
    data = sets[SHORT]
    by_doc = {}
    for q in data.queries:
        by_doc.setdefault(q.fact, []).append(data.documents[q.doc].chunk_texts[q.chunk])
    for paragraphs in by_doc.values():
        # The answers differ: no paragraph of one document is a paragraph of another.
        assert len(set(paragraphs)) == len(paragraphs)


def test_facts_are_findable_when_the_subject_is_written_in(scores):
    """The reference (subject prepended to every chunk) shows the facts can be retrieved."""
    for length in (SHORT, LONG):
        assert scores[(length, REFERENCE, RECALL_AT_1)] >= 0.7


@pytest.mark.parametrize("length", [SHORT, LONG])
def test_late_chunking_beats_naive_by_a_wide_margin(scores, length):
    assert scores[(length, LATE, RECALL_AT_1)] >= scores[(length, NAIVE, RECALL_AT_1)] + 0.3
    assert scores[(length, LATE, NDCG_AT_10)] >= scores[(length, NAIVE, NDCG_AT_10)] + 0.3
    assert scores[(length, LATE_FUSION, RECALL_AT_1)] >= scores[(length, NAIVE, RECALL_AT_1)] + 0.3


def test_carried_opening_context_beats_plain_windows_on_long_documents(scores):
    assert scores[(LONG, LATE, RECALL_AT_1)] >= scores[(LONG, PLAIN, RECALL_AT_1)] + 0.15
    assert scores[(LONG, LATE, NDCG_AT_10)] > scores[(LONG, PLAIN, NDCG_AT_10)]
    # The gain comes from facts past the first window, which plain windows cut off from the name.
    assert scores[(LONG, LATE, DEEP_RECALL_AT_1)] > scores[(LONG, PLAIN, DEEP_RECALL_AT_1)]


def test_report_lists_every_method(scores):
    methods = {m for (_, m, _) in scores}
    assert {NAIVE, LATE, LATE_FUSION, PLAIN, REFERENCE} <= methods
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert not any(re.search("plain", m) for (n, m, _) in scores if n == SHORT)  # one window: no rows


def test_window_settings_report_quality_and_cost(minilm, sets):
    measured = evaluate_window_settings(minilm, sets[LONG], settings=[(0, 0), (16, 0), (16, 16)])
    by = {(s.method, s.metric): s.value for s in measured}
    methods = list(dict.fromkeys(s.method for s in measured))
    # The settings asked for, in order, then the encoder's default (31 + 15 in a 254-token window).
    assert methods == ["context 0, overlap 0", "context 16, overlap 0", "context 16, overlap 16",
                       "context 31, overlap 15 (default)"]
    cost = [by[(m, POSITIONS_PER_TOKEN)] for m in methods]
    # Each window runs its special tokens plus the carried lead; windows hold 254 content tokens.
    assert 1.0 < cost[0] < 1.02 < cost[1] < cost[2] and cost[3] > cost[1]
    assert cost[3] == pytest.approx(256 / (254 - 46), rel=0.05)
    plain, carried = (by[(m, RECALL_AT_1)] for m in methods[:2])
    assert carried >= plain + 0.15
    assert all(s.task == WINDOWS and s.length == LONG for s in measured)
    table = markdown_report(measured)
    assert "### windows" in table and "positions run per token" in table

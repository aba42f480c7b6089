"""Chunk targets (the chunk told its document's opening) and the held-out retrieval task."""

from __future__ import annotations

import re

from dewey_core.chunking import char_spans, chunk_token_ranges
from dewey_core.evaluation import contextual_set
from dewey_core.training.heldout import sentence_removal_set
from dewey_core.training.targets import chunk_target_text, opening_span


def test_opening_is_the_title_or_first_sentence(minilm, pydoc_topics):
    tokenize = minilm.model.tokenizer.tokenize
    text = pydoc_topics["if"]
    start, end = opening_span(text, tokenize([text])[0], 32)
    assert text[start:end] == 'The "if" statement\n******************'
    doc = contextual_set(num_documents=1, target_tokens=150, seed=0).documents[0]
    start, end = opening_span(doc.text, tokenize([doc.text])[0], 32)
    assert doc.text[start:end] == doc.chunk_texts[0]  # "Xvale is a town ..., home to N people."
    start, end = opening_span(doc.text, tokenize([doc.text])[0], 4)
    assert doc.text[start:end] == doc.text[:end] and doc.subject in doc.text[start:end]


def test_chunk_targets_carry_the_opening_unless_they_hold_it():
    text = "Ardenvale is a town.\n\nIts economy depends on saffron."
    opening = (0, 20)
    assert chunk_target_text(text, (22, len(text)), opening, "opening") == \
        "Ardenvale is a town.\n\nIts economy depends on saffron."
    assert chunk_target_text(text, (0, 22), opening, "opening") == "Ardenvale is a town.\n\n"
    assert chunk_target_text(text, (22, len(text)), opening, "none") == "Its economy depends on saffron."


def test_removed_sentences_are_queries_and_their_neighbours_chunks_are_relevant(minilm, pydoc_topics):
    docs = [pydoc_topics[k] for k in ("exceptions", "raise", "for")]

    def chunk(text):
        tok = minilm.model.tokenizer.tokenize([text])[0]
        return char_spans(text, tok, chunk_token_ranges(text, tok, 64))

    data = sentence_removal_set(docs, chunk, queries_per_document=4, seed=0)
    assert 6 <= len(data.queries) <= 12
    chunks = [t[s:e] for t, spans in zip(data.texts, data.spans, strict=True) for s, e in spans]
    flat = [" ".join(c.split()) for c in chunks]
    for query, relevant in zip(data.queries, data.relevant, strict=True):
        assert 8 <= len(query.split()) <= 40
        assert all(query not in c for c in flat)  # taken out of the text
        assert data.doc_of_chunk[relevant] in range(len(docs))
    assert sentence_removal_set(docs, chunk, seed=0) == sentence_removal_set(docs, chunk, seed=0)
    # Spans tile each reduced text.
    for text, spans in zip(data.texts, data.spans, strict=True):
        assert spans[0][0] == 0 and spans[-1][1] == len(text)


def test_the_relevant_chunk_holds_the_removed_sentences_neighbour():
    first = "Alpha beta gamma delta epsilon zeta eta theta."
    second = "Iota kappa lambda mu nu xi omicron pi."
    text = f"Title\n\n{first} {second} Rho sigma."

    def by_sentence(t):  # one chunk per sentence
        ends = [m.end() for m in re.finditer(r"[.!?](\s+|$)", t)]
        return list(zip([0, *ends[:-1]], ends, strict=True))

    removed = set()
    for seed in range(8):
        data = sentence_removal_set([text], by_sentence, queries_per_document=1, seed=seed)
        (query,), (relevant,) = data.queries, data.relevant
        start, end = data.spans[0][relevant]
        neighbour = second if query == first else first
        assert neighbour in data.texts[0][start:end] and query not in data.texts[0]
        removed.add(query)
    assert removed == {first, second}


def test_held_out_late_chunking_uses_the_runs_window_settings(minilm, pydoc_topics, monkeypatch):
    from dewey_core.training.heldout import evaluate_held_out_retrieval

    def chunks(text):
        return [(c.start, c.end) for c in minilm.late_chunk([text], chunk_size=64)[0].chunks]

    data = sentence_removal_set([pydoc_topics["try"]], chunks)
    seen, real = [], minilm.late_chunk
    monkeypatch.setattr(minilm, "late_chunk", lambda *a, **k: seen.append(k) or real(*a, **k))
    scores = evaluate_held_out_retrieval(minilm, data, context_tokens=4, window_overlap=2)
    assert seen and all(k["context_tokens"] == 4 and k["window_overlap"] == 2 for k in seen)
    assert data.queries and 0 <= scores["late recall@1"] <= 1

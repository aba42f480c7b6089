"""LongEmbed-style passkey and needle tasks: generators and a small run on MiniLM."""

from __future__ import annotations

import re

import pytest

from dewey_core.evaluation import (
    ACCURACY_AT_1,
    DOCUMENT_VECTOR,
    LATE,
    LATE_FUSION,
    NAIVE,
    evaluate_document_retrieval,
    markdown_report,
    needle_set,
    passkey_set,
)
from dewey_core.evaluation.longembed import reference_prose

DOCS = 8


@pytest.mark.parametrize("build", [passkey_set, needle_set])
def test_generators_are_deterministic_and_hide_one_sentence_per_document(build, minilm):
    data = build(300, DOCS, seed=5, count_tokens=minilm.count_tokens)
    assert data == build(300, DOCS, seed=5, count_tokens=minilm.count_tokens)
    assert data.documents != build(300, DOCS, seed=6, count_tokens=minilm.count_tokens).documents
    assert data.answers == list(range(DOCS)) and len(data.queries) == DOCS
    tokens = minilm.count_tokens(data.documents)
    assert min(tokens) >= 300 and max(tokens) <= 300 + 60
    assert all(0.0 <= d <= 1.0 for d in data.depths)
    assert len(set(data.depths)) > 1  # hidden at different depths
    names = [re.search(r"[A-Z][a-z]+ [A-Z][a-z]+", q).group(0) for q in data.queries]
    for d, doc in enumerate(data.documents):
        assert [n for n in names if n in doc] == [names[d]]  # each name only in its own document


def test_passkey_matches_longembed_format():
    data = passkey_set(256, 4, seed=0)
    for query, doc in zip(data.queries, data.documents, strict=True):
        name = query.removeprefix("What is the pass key for ").removesuffix("?")
        key = re.search(rf"The pass key for {name} is (\d{{5}})\. Remember it\. \1 is the pass key", doc)
        assert key is not None
        assert doc.replace(key.group(0), "").count("The grass is green.") >= 3


def test_needle_haystack_is_real_prose():
    prose = reference_prose()
    data = needle_set(400, 3, seed=0, prose=prose)
    sentences = set(prose)
    for doc in data.documents:
        assert sum(s in sentences for s in re.split(r"(?<=[.?!]) ", doc)) >= 5


@pytest.mark.parametrize("bad", [dict(length=0), dict(num_documents=1)])
def test_bad_sizes_are_rejected(bad):
    kwargs = dict(length=256, num_documents=4) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        passkey_set(**kwargs)


@pytest.fixture(scope="module")
def accuracies(minilm):
    scores = []
    for build, lengths in ((passkey_set, (256, 512)), (needle_set, (256,))):
        for length in lengths:
            scores += evaluate_document_retrieval(minilm, build(length, DOCS, 0, minilm.count_tokens),
                                                  chunk_size=128)
    print("\n" + markdown_report(scores))
    return {(s.task, s.length, s.method): s for s in scores}


def test_every_method_is_measured_on_every_query(accuracies):
    for task, length in (("passkey", 256), ("passkey", 512), ("needle", 256)):
        for method in (NAIVE, LATE, LATE_FUSION, DOCUMENT_VECTOR):
            score = accuracies[(task, length, method)]
            assert score.metric == ACCURACY_AT_1 and score.queries == DOCS
            assert 0.0 <= score.value <= 1.0 and score.tokens >= length


def test_chunked_methods_find_passkeys_well_above_chance(accuracies):
    chance = 1 / DOCS
    for method in (NAIVE, LATE, LATE_FUSION):
        assert accuracies[("passkey", 256, method)].value >= 4 * chance
    assert accuracies[("needle", 256, LATE)].value >= 2 * chance

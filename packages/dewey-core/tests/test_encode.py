"""Plain encoding on the real all-MiniLM-L6-v2: parity with sentence-transformers, batching, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from dewey_core import DeweyEncoder


@pytest.fixture(scope="module")
def mixed_texts(pydoc_topics) -> list[str]:
    """Real text from 2 to ~2,000 words: short, medium and longer than the 256-token window."""
    bodies = list(pydoc_topics.values())
    sizes = [2, 9, 40, 130, 400, 2000]
    return [" ".join(bodies[i].split()[: sizes[i % len(sizes)]]) for i in range(36)]


@pytest.fixture(scope="module")
def sentence_transformer(minilm_path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(minilm_path, device="cpu")


def test_matches_sentence_transformers(minilm, sentence_transformer, mixed_texts):
    ours = minilm.encode_documents(mixed_texts)
    theirs = sentence_transformer.encode(mixed_texts, normalize_embeddings=True)
    assert ours.dtype == np.float32 and ours.shape == (len(mixed_texts), 384)
    assert np.min(np.sum(ours * theirs, axis=1)) >= 0.9999


def test_query_and_document_without_prompts_agree(minilm, mixed_texts):
    np.testing.assert_allclose(minilm.encode_queries(mixed_texts[:4]),
                               minilm.encode_documents(mixed_texts[:4]), atol=1e-6)


@pytest.mark.parametrize("token_budget", [1, 300, 100_000])
def test_batch_size_invariance(minilm, mixed_texts, token_budget):
    reference = minilm.encode_documents(mixed_texts)
    other = DeweyEncoder(minilm.model, token_budget=token_budget).encode_documents(mixed_texts)
    assert np.min(np.sum(reference * other, axis=1)) >= 0.9999


def test_batch_size_cap_changes_nothing_but_batching(minilm, mixed_texts):
    capped = DeweyEncoder(minilm.model, batch_size=3)
    assert np.min(np.sum(capped.encode_documents(mixed_texts) * minilm.encode_documents(mixed_texts),
                         axis=1)) >= 0.9999
    with pytest.raises(ValueError, match="batch_size"):
        DeweyEncoder(minilm.model, batch_size=0)


def test_order_is_preserved(minilm, mixed_texts):
    reference = minilm.encode_documents(mixed_texts)
    perm = np.random.default_rng(0).permutation(len(mixed_texts))
    shuffled = minilm.encode_documents([mixed_texts[i] for i in perm])
    np.testing.assert_allclose(shuffled, reference[perm], atol=1e-5)


def test_packed_batches_match_padded(minilm, mixed_texts):
    packed = DeweyEncoder(minilm.model, packed=True).encode_documents(mixed_texts)
    assert np.min(np.sum(packed * minilm.encode_documents(mixed_texts), axis=1)) >= 0.9999


def test_outputs_are_normalised(minilm, mixed_texts):
    np.testing.assert_allclose(np.linalg.norm(minilm.encode_queries(mixed_texts), axis=1), 1, atol=1e-5)


def test_dim_truncates_then_renormalises(minilm, mixed_texts):
    full = minilm.encode_documents(mixed_texts[:5])
    short = minilm.encode_documents(mixed_texts[:5], dim=64)
    assert short.shape == (5, 64)
    np.testing.assert_array_equal(minilm.encode_documents(mixed_texts[:5], dim=np.int64(64)), short)
    expected = full[:, :64] / np.linalg.norm(full[:, :64], axis=1, keepdims=True)
    np.testing.assert_allclose(short, expected, atol=1e-5)


@pytest.mark.parametrize("dim", [0, -3, 385])
def test_dim_out_of_range(minilm, dim):
    with pytest.raises(ValueError, match="dim"):
        minilm.encode_queries(["x"], dim=dim)


def test_dim_wrong_type(minilm):
    with pytest.raises(TypeError, match="dim"):
        minilm.encode_queries(["x"], dim="64")


def test_texts_longer_than_window_keep_their_first_tokens(minilm, pydoc_topics):
    long_text = max(pydoc_topics.values(), key=len)
    tokenizer = minilm.tokenizer
    ids = tokenizer(long_text, add_special_tokens=False)["input_ids"][:254]
    prefix = tokenizer.decode(ids)
    a, b = minilm.encode_documents([long_text, prefix])
    assert float(a @ b) > 0.999


def test_empty_list_gives_empty_matrix(minilm):
    assert minilm.encode_documents([]).shape == (0, 384)
    assert minilm.encode_queries([], dim=32).shape == (0, 32)


def test_empty_string_gives_a_valid_vector(minilm):
    (vec,) = minilm.encode_documents([""])
    assert np.isfinite(vec).all() and abs(np.linalg.norm(vec) - 1) < 1e-5


@pytest.mark.parametrize("bad", ["just a string", None, 3, {"a": 1}])
def test_non_list_input_is_refused(minilm, bad):
    with pytest.raises(TypeError, match="list of str"):
        minilm.encode_documents(bad)


def test_non_string_item_names_its_index(minilm):
    with pytest.raises(TypeError, match=r"texts\[2\] must be str, got int"):
        minilm.encode_queries(["a", "b", 7])


def test_a_lone_surrogate_is_named(minilm):
    # What slicing a UTF-16 string through an emoji leaves; the tokenizer's own error names nothing.
    for call in (minilm.encode_documents, minilm.count_tokens, minilm.late_chunk):
        with pytest.raises(ValueError, match=r"texts\[1\] holds a lone surrogate \('\\ud83d' at character 2"):
            call(["fine \U0001f680", "a \ud83d b"])


def test_unnormalised_output_is_the_raw_pooled_vector(minilm, mixed_texts):
    raw = minilm.encode_documents(mixed_texts[:4], normalize=False)
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    assert not np.allclose(norms, 1, atol=1e-3)
    np.testing.assert_allclose(raw / norms, minilm.encode_documents(mixed_texts[:4]), atol=1e-5)

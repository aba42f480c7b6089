"""Construction, wrong input and the contextual cache, without loading a model."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydantic
import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_dewey import (
    DEFAULT_MODEL,
    ContextualVectorCache,
    DeweyEmbeddings,
    DeweyRetriever,
    DeweyTextSplitter,
    HandoffError,
    HandoffWarning,
    JasperEmbeddings,
    chunk_id,
)
from langchain_dewey.contextual import document_ids


@pytest.fixture
def emb() -> DeweyEmbeddings:
    return DeweyEmbeddings(model="no/such-model", device="cpu")


def test_defaults_and_lazy_loading():
    emb = DeweyEmbeddings()
    assert emb.model == DEFAULT_MODEL == "infgrad/dewey_en_beta"
    assert emb.dim is None and emb.show_progress is False
    assert emb._encoder is None  # nothing loaded until the first embedding


def test_path_model_is_kept_as_str(tmp_path: Path):
    assert DeweyEmbeddings(model=tmp_path).model == str(tmp_path)


def test_model_name_is_accepted_as_huggingface_embeddings_spells_it(tmp_path: Path):
    emb = DeweyEmbeddings(model_name=tmp_path)
    assert emb.model == str(tmp_path) and emb.model_dump()["model"] == str(tmp_path)
    assert JasperEmbeddings(model_name="a/b").model == "a/b"


def test_unknown_field_is_refused():
    with pytest.raises(pydantic.ValidationError, match="batch_sise"):
        DeweyEmbeddings(batch_sise=8)


@pytest.mark.parametrize("field, value", [("dim", 0), ("dim", "big"), ("max_length", -1),
                                          ("token_budget", 0), ("contextual_cache_chunks", -1)])
def test_bad_field_values(field, value):
    with pytest.raises(pydantic.ValidationError, match=field):
        DeweyEmbeddings(**{field: value})


def test_embed_documents_refuses_a_bare_string(emb):
    with pytest.raises(TypeError, match=r"embed_documents\(\) takes a list of str, got str "
                                        r"\(wrap a single text in a list\)"):
        emb.embed_documents("hello")


def test_embed_documents_names_the_bad_item(emb):
    with pytest.raises(TypeError, match=r"texts\[1\] must be str, got int"):
        emb.embed_documents(["a", 3])


def test_embed_query_refuses_non_str(emb):
    with pytest.raises(TypeError, match=r"embed_query\(\) takes a str, got list"):
        emb.embed_query(["a"])


async def test_async_methods_check_types_before_dispatch(emb):
    with pytest.raises(TypeError, match=r"aembed_documents\(\) takes a list of str, got NoneType"):
        await emb.aembed_documents(None)
    with pytest.raises(TypeError, match=r"aembed_query\(\) takes a str, got int"):
        await emb.aembed_query(7)


def test_jasper_image_inputs_are_checked_before_loading():
    emb = JasperEmbeddings(model="no/such-model")
    with pytest.raises(TypeError, match=r"embed_images\(\) takes a list of images, got str"):
        emb.embed_images("cat.png")
    with pytest.raises(TypeError, match=r"images\[1\] must be a PIL image, a file path or bytes, got int"):
        emb.embed_images([b"\x89PNG", 5])
    with pytest.raises(TypeError, match=r"embed_image\(\): image must be .* got float"):
        emb.embed_image(1.5)


def test_splitter_refuses_wrong_collaborators(emb):
    with pytest.raises(TypeError, match="embeddings must be a DeweyEmbeddings, got str"):
        DeweyTextSplitter("minilm")
    with pytest.raises(TypeError, match="base_splitter must be a langchain TextSplitter, got dict"):
        DeweyTextSplitter(emb, base_splitter={})
    with pytest.raises(TypeError, match="docstore must be a langchain BaseStore, got dict"):
        DeweyTextSplitter(emb, docstore={})
    with pytest.raises(ValueError, match="chunking must be 'boundaries' or 'fixed'"):
        DeweyTextSplitter(emb, chunking="sentences")


def test_splitter_refuses_wrong_inputs(emb):
    splitter = DeweyTextSplitter(emb)
    with pytest.raises(TypeError, match=r"split_text\(\) takes a str, got bytes"):
        splitter.split_text(b"text")
    with pytest.raises(TypeError, match=r"documents\[0\] must be a langchain Document, got str"):
        splitter.split_documents(["text"])
    with pytest.raises(TypeError, match=r"create_documents\(\) takes a list of str, got str"):
        splitter.create_documents("text")
    with pytest.raises(TypeError, match=r"takes a list of Documents, got Document \(wrap"):
        splitter.split_documents(Document("text"))


def test_retriever_needs_dewey_embeddings_and_a_docstore_for_documents(emb):
    from langchain_core.embeddings import DeterministicFakeEmbedding

    with pytest.raises(ValueError, match="pass embeddings=DeweyEmbeddings"):
        DeweyRetriever(vectorstore=InMemoryVectorStore(DeterministicFakeEmbedding(size=8)))
    store = InMemoryVectorStore(emb)
    with pytest.raises(ValueError, match="mode='documents' needs docstore="):
        DeweyRetriever(vectorstore=store, mode="documents")
    with pytest.raises(pydantic.ValidationError, match="k"):
        DeweyRetriever(vectorstore=store, k=0)
    with pytest.raises(pydantic.ValidationError, match="fusion_weight"):
        DeweyRetriever(vectorstore=store, fusion_weight=1.5)


def test_changing_the_model_or_dim_drops_loaded_state(emb):
    emb.contextual_cache.add("d", [(0, 1, "a", np.ones(2, dtype=np.float32))])
    emb._encoder = object()
    emb.dim = 8
    assert len(emb.contextual_cache) == 0 and emb._encoder is not None
    emb.model = "other/model"
    assert emb._encoder is None


def _v(x: float) -> np.ndarray:
    return np.full(2, x, dtype=np.float32)


def _firsts(lookup) -> list[float | None]:
    return [None if v is None else float(v[0]) for v in lookup.vectors]


def test_a_repeated_text_gets_each_occurrence_s_vector_when_a_store_embeds_in_batches():
    cache = ContextualVectorCache(max_chunks=10)
    cache.add("a", [(0, 5, "alpha", _v(1)), (5, 9, "footer", _v(2))])
    cache.add("b", [(0, 4, "beta", _v(3)), (4, 8, "footer", _v(4))])
    # One split of two documents stored in batches of one (Qdrant, index(batch_size=...)).
    got = [_firsts(cache.take([t])) for t in ("alpha", "footer", "beta", "footer")]
    assert got == [[1], [2], [3], [4]]
    # ... and in batches of three, then one.
    cache.add("a", [(0, 5, "alpha", _v(1)), (5, 9, "footer", _v(2))])
    cache.add("b", [(0, 4, "beta", _v(3)), (4, 8, "footer", _v(4))])
    assert _firsts(cache.take(["alpha", "footer", "beta"])) == [1, 2, 3]
    assert _firsts(cache.take(["footer"])) == [4]


def test_a_call_is_placed_by_its_run_of_texts_wherever_it_was_filed():
    cache = ContextualVectorCache(max_chunks=10)
    cache.add("a", [(0, 5, "alpha", _v(1)), (5, 9, "footer", _v(2))])
    cache.add("b", [(0, 4, "beta", _v(3)), (4, 8, "footer", _v(4))])
    assert _firsts(cache.take(["beta", "footer"])) == [3, 4]  # b stored first
    found = cache.take(["alpha", "footer"])
    assert _firsts(found) == [1, 2] and found.ambiguous == []


def test_a_text_that_cannot_be_placed_is_reported_ambiguous_or_forgotten():
    cache = ContextualVectorCache(max_chunks=3)
    cache.add("a", [(0, 5, "alpha", _v(1)), (5, 9, "footer", _v(2))])
    cache.add("b", [(0, 4, "footer", _v(4))])
    found = cache.take(["footer", "unknown"])
    assert _firsts(found) == [4, None] and found.ambiguous == [0] and found.forgotten == []
    cache.add("c", [(0, 4, "gamma", _v(5))])  # pushes out "alpha"
    found = cache.take(["alpha", "gamma"])
    assert _firsts(found) == [None, 5] and found.forgotten == [0]
    assert cache.by_position("b", 0, 4)[0] == 4 and cache.by_position("b", 0, 5) is None


def test_resplitting_a_document_replaces_its_vectors():
    cache = ContextualVectorCache(max_chunks=2)
    cache.add("a", [(0, 1, "x", _v(1))])
    cache.add("b", [(0, 1, "y", _v(2))])
    cache.add("a", [(0, 1, "x", _v(5))])  # the same chunk again: newest wins, no growth
    assert len(cache) == 2 and _firsts(cache.take(["x"])) == [5]
    cache.add("c", [(0, 1, "z", _v(3))])
    assert _firsts(cache.take(["y", "x", "z"])) == [None, 5, 3]  # "b" was the oldest
    cache.add("a", [(2, 3, "x", _v(7))])  # "a" edited: its chunk moved
    assert cache.by_position("a", 0, 1) is None and _firsts(cache.take(["x"])) == [7]


def test_another_split_of_the_same_text_keeps_the_first_and_an_edit_forgets_it():
    cache = ContextualVectorCache(max_chunks=10)
    cache.add("a", [(0, 5, "alpha", _v(1)), (5, 9, "omega", _v(2))], document_text="alphaomega")
    cache.add("a", [(0, 9, "alphaomega", _v(3))], document_text="alphaomega")  # another chunk size
    assert _firsts(cache.take(["alpha", "omega"])) == [1, 2]
    assert _firsts(cache.take(["alphaomega"])) == [3]
    cache.add("a", [(0, 5, "alpha", _v(4))], document_text="alpha")  # edited: the rest is stale
    found = cache.take(["alphaomega", "omega"])
    assert _firsts(found) == [None, None] and found.forgotten == [0, 1]
    assert _firsts(cache.take(["alpha"])) == [4]


def test_a_pinned_handoff_is_exact_and_refuses_anything_else():
    cache = ContextualVectorCache(max_chunks=10)
    cache.add("a", [(0, 4, "same", _v(1))])
    with cache.pinned(["same", "same", "other"], [_v(7), _v(8), _v(9)]):
        assert _firsts(cache.take(["same"])) == [7]
        assert _firsts(cache.take(["same", "other"])) == [8, 9]
    assert _firsts(cache.take(["same"])) == [1]  # outside the block: the cache again
    with pytest.raises(HandoffError, match=r"not chunks 0\.\.0 of the chunks being added"), \
            cache.pinned(["same"], [_v(7)]):
        cache.take(["other"])
    with pytest.raises(HandoffError, match="embedded 1 of the 2 chunks"), \
            cache.pinned(["a", "b"], [_v(1), _v(2)]):
        cache.take(["a"])


def test_embed_documents_warns_when_a_contextual_vector_is_missing_or_ambiguous(emb, monkeypatch):
    monkeypatch.setattr(type(emb), "encoder", property(lambda self: FakeEncoder()))
    emb.contextual_cache.add("a", [(0, 5, "alpha", _v(1)), (5, 9, "footer", _v(2))])
    emb.contextual_cache.add("b", [(0, 4, "footer", _v(4))])
    with pytest.warns(HandoffWarning, match=r"1 of 2 texts \(first: 'edited'\) have no contextual vector"):
        assert [v[0] for v in emb.embed_documents(["alpha", "edited"])] == [1, 0]
    with pytest.warns(HandoffWarning, match=r"1 chunk text\(s\) \(first: 'footer'\) were split more"):
        emb.embed_documents(["footer"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [v[0] for v in emb.embed_documents(["plain text"])] == [0]  # no chunk at all: silent


class FakeEncoder:
    def encode_documents(self, texts, dim=None, **kwargs):
        return np.zeros((len(texts), 2), dtype=np.float32)


def test_chunk_ids_are_uuids_and_identical_documents_do_not_collide():
    import uuid

    ids = document_ids(["same", "same", "other"], [{}, {}, {}])
    assert ids[0] != ids[1] and ids[1] == f"{ids[0]}-2"
    assert document_ids(["same"], [{}]) == ids[:1]  # deterministic
    assert document_ids(["same", "same"], [{}, {}], ["x", None]) == ["x", ids[0]]
    chunk = chunk_id(ids[0], 3)
    assert str(uuid.UUID(chunk)) == chunk and chunk == chunk_id(ids[0], 3) != chunk_id(ids[1], 3)


def test_copies_and_pickles_find_their_model_again(emb):
    import copy
    import pickle

    emb.contextual_cache.add("d", [(0, 1, "a", _v(1))])
    emb._encoder = object()  # stands in for a loaded encoder
    changed = emb.model_copy(update={"max_length": 4, "dim": 8})
    assert (changed.max_length, changed.dim) == (4, 8) and changed._encoder is None
    assert len(changed.contextual_cache) == 0 and len(emb.contextual_cache) == 1
    with pytest.raises(pydantic.ValidationError, match="dim"):
        emb.model_copy(update={"dim": -1})
    for clone in (copy.copy(emb), copy.deepcopy(emb), emb.model_copy(deep=True),
                  pickle.loads(pickle.dumps(emb))):
        assert clone.model == emb.model and clone._encoder is None
        assert clone.contextual_cache is not emb.contextual_cache and len(clone.contextual_cache) == 0
    assert emb.model_copy().model_fields_set == emb.model_fields_set


def test_retriever_settings_are_validated_on_assignment(emb):
    store = InMemoryVectorStore(emb)
    retriever = DeweyRetriever(vectorstore=store)
    with pytest.raises(pydantic.ValidationError, match="k"):
        retriever.k = 0


class Counting(DeweyEmbeddings):
    """A user's subclass with private state of its own (module level, so it pickles)."""

    _calls: int = pydantic.PrivateAttr(default=0)


def test_a_subclass_keeps_its_own_private_state_through_copies(emb):
    import copy
    import pickle

    counting = Counting(model=emb.model)
    counting._calls = 3
    for clone in (copy.copy(counting), copy.deepcopy(counting), pickle.loads(pickle.dumps(counting))):
        assert type(clone) is Counting and clone._calls == 0 and clone._encoder is None

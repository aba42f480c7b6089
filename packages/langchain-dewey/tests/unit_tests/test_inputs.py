"""Construction, wrong input and the contextual cache, without loading a model."""

from __future__ import annotations

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
    JasperEmbeddings,
)


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


def test_cache_resolves_duplicate_texts_in_split_order():
    cache = ContextualVectorCache(max_chunks=10)
    cache.add("doc1", [(0, 5, "same", _v(1)), (5, 9, "other", _v(2))])
    cache.add("doc2", [(0, 4, "same", _v(3))])
    got = cache.by_text(["same", "other", "same", "unknown"])
    assert got[0][0] == 1 and got[1][0] == 2 and got[2][0] == 3 and got[3] is None
    assert cache.by_position("doc2", 0, 4)[0] == 3
    assert cache.by_position("doc2", 0, 5) is None


def test_cache_forgets_oldest_first_and_resplit_replaces():
    cache = ContextualVectorCache(max_chunks=2)
    cache.add("a", [(0, 1, "x", _v(1))])
    cache.add("b", [(0, 1, "y", _v(2))])
    cache.add("a", [(0, 1, "x", _v(5))])  # the same chunk again: newest wins, no growth
    assert len(cache) == 2 and cache.by_text(["x"])[0][0] == 5
    cache.add("c", [(0, 1, "z", _v(3))])
    assert cache.by_text(["y", "x", "z"])[0] is None  # "b" was the oldest
    assert len(cache) == 2


def test_cache_gives_the_latest_split_its_own_vector_for_a_shared_text():
    cache = ContextualVectorCache(max_chunks=10)
    cache.add("a", [(0, 4, "footer", _v(1))])
    cache.add("b", [(10, 16, "footer", _v(2))])
    assert cache.by_text(["footer"])[0][0] == 2  # b's chunks are stored next, on their own
    cache.add("a", [(5, 11, "footer", _v(7))])  # "a" edited: its footer moved
    assert cache.by_position("a", 0, 4) is None  # the stale position is gone
    assert cache.by_text(["footer"])[0][0] == 7
    assert [v[0] for v in cache.by_text(["footer", "footer"])] == [2, 7]


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

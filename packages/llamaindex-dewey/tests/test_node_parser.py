"""DeweyNodeParser: late-chunked node embeddings, LlamaIndex node conventions, serialisation,
pipeline cache and docstore, bad input."""

from __future__ import annotations

import asyncio
import itertools
import json
import pickle
import warnings

import numpy as np
import pytest
from llama_index.core import Document
from llama_index.core.ingestion import DocstoreStrategy, IngestionCache, IngestionPipeline
from llama_index.core.ingestion.pipeline import get_transformation_hash
from llama_index.core.node_parser import MarkdownNodeParser, NodeParser, SentenceSplitter
from llama_index.core.node_parser.node_utils import build_nodes_from_splits
from llama_index.core.schema import MetadataMode, NodeRelationship, TextNode
from llama_index.core.storage.docstore import SimpleDocumentStore

from llamaindex_dewey import DeweyNodeParser, get_global_vectors


def stable_id(i: int, doc) -> str:
    return f"{doc.node_id}:{i}"


def close(a, b) -> bool:
    return np.allclose(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32), atol=1e-6)


# ---------------------------------------------------------------------- equality with dewey_core
def test_pipeline_nodes_carry_dewey_core_late_chunk_vectors(pipeline_nodes, pipeline_parser, topic_texts,
                                                            minilm):
    names = list(topic_texts)
    expected = minilm.late_chunk(list(topic_texts.values()), chunk_size=pipeline_parser.chunk_size)
    by_doc: dict[str, list[TextNode]] = {}
    for node in pipeline_nodes:
        by_doc.setdefault(node.ref_doc_id, []).append(node)
    assert list(by_doc) == [f"pydoc-{n}" for n in names]  # documents in input order
    for name, doc in zip(names, expected, strict=True):
        nodes = by_doc[f"pydoc-{name}"]
        assert [(n.start_char_idx, n.end_char_idx) for n in nodes] == [(c.start, c.end) for c in doc.chunks]
        assert [n.text for n in nodes] == [c.text for c in doc.chunks]
        for node, chunk in zip(nodes, doc.chunks, strict=True):
            assert close(node.embedding, chunk.embedding)
            assert topic_texts[name][node.start_char_idx:node.end_char_idx] == node.text
        [stored] = get_global_vectors(pipeline_parser.docstore, [f"pydoc-{name}"]).values()
        assert close(stored, doc.global_embedding)


def test_wrapped_sentence_splitter_keeps_its_nodes_and_gets_span_vectors(minilm_path, minilm, topic_texts):
    splitter = SentenceSplitter(chunk_size=64, chunk_overlap=16, id_func=stable_id)
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", splitter=splitter)
    texts = [topic_texts["del"], topic_texts["lambda"]]
    docs = [Document(text=t, id_=f"d{i}") for i, t in enumerate(texts)]
    nodes = parser.get_nodes_from_documents(docs)
    plain = splitter.get_nodes_from_documents([Document(text=t, id_=f"d{i}") for i, t in enumerate(texts)])
    assert [(n.id_, n.text, n.start_char_idx, n.end_char_idx) for n in nodes] == \
        [(n.id_, n.text, n.start_char_idx, n.end_char_idx) for n in plain]
    assert any(a.end_char_idx > b.start_char_idx for a, b in itertools.pairwise(nodes)
               if a.ref_doc_id == b.ref_doc_id), "the splitter's chunks overlap"
    spans = [[(n.start_char_idx, n.end_char_idx) for n in nodes if n.ref_doc_id == f"d{i}"]
             for i in range(len(texts))]
    expected = minilm.late_chunk(texts, spans, allow_overlap=True)
    flat = [c for doc in expected for c in doc.chunks]
    assert len(flat) == len(nodes)
    for node, chunk in zip(nodes, flat, strict=True):
        assert close(node.embedding, chunk.embedding)


def test_wrapped_markdown_parser_keeps_header_metadata(minilm_path, minilm):
    text = "# Spices\n\nSaffron is costly.\n\n## Harvest\n\nIt is picked by hand in autumn.\n"
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", splitter=MarkdownNodeParser())
    nodes = parser.get_nodes_from_documents([Document(text=text, id_="md")])
    assert [n.metadata["header_path"] for n in nodes] == ["/", "/Spices/"]
    spans = [(n.start_char_idx, n.end_char_idx) for n in nodes]
    assert [text[s:e] for s, e in spans] == [n.text for n in nodes]
    expected = minilm.late_chunk([text], [spans])[0]
    assert all(close(n.embedding, c.embedding) for n, c in zip(nodes, expected.chunks, strict=True))


# ---------------------------------------------------------------------- node fields (golden)
GOLDEN_TEXT = ("Ardenvale is a town. Its economy depends on saffron.\n\n"
               "Saffron is harvested in autumn, by hand.")


def test_golden_node_fields(minilm_path):
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=8, id_func=stable_id)
    doc = Document(text=GOLDEN_TEXT, id_="doc-1", metadata={"title": "Ardenvale"},
                   excluded_llm_metadata_keys=["title"])
    nodes = parser.get_nodes_from_documents([doc])
    assert [(n.id_, n.text, n.start_char_idx, n.end_char_idx) for n in nodes] == [
        ("doc-1:0", "Ardenvale is a town. ", 0, 21),
        ("doc-1:1", "Its economy depends on saffron.\n\n", 21, 54),
        ("doc-1:2", "Saffron is harvested in autumn, ", 54, 86),
        ("doc-1:3", "by hand.", 86, 94),
    ]
    for i, node in enumerate(nodes):
        assert node.metadata == {"title": "Ardenvale"}  # no vector in metadata
        assert node.excluded_embed_metadata_keys == []
        assert node.excluded_llm_metadata_keys == ["title"]
        assert node.source_node.node_id == "doc-1"
        assert node.source_node.metadata == {"title": "Ardenvale"}
        prev, nxt = node.prev_node, node.next_node
        assert (prev.node_id if prev else None) == (f"doc-1:{i - 1}" if i else None)
        assert (nxt.node_id if nxt else None) == (f"doc-1:{i + 1}" if i < 3 else None)
        # Embed/LLM strings: the vector never shows; the embedding itself is of the text alone.
        assert node.get_content(MetadataMode.EMBED) == f"title: Ardenvale\n\n{node.text.strip()}"
        assert node.get_content(MetadataMode.LLM) == node.text
        assert len(node.embedding) == 384
    assert list(get_global_vectors(parser.docstore, ["doc-1", "doc-2"])) == ["doc-1"]
    assert parser.docstore.docs == {}  # kept beside the docstore's nodes, not among them
    # The document itself is left untouched.
    assert doc.metadata == {"title": "Ardenvale"} and doc.embedding is None


def test_metadata_does_not_change_the_vectors(minilm_path):
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=8)
    plain = parser.get_nodes_from_documents([Document(text=GOLDEN_TEXT)])
    tagged = parser.get_nodes_from_documents([Document(text=GOLDEN_TEXT, metadata={"title": "Other"})])
    assert all(close(a.embedding, b.embedding) for a, b in zip(plain, tagged, strict=True))


def test_options_no_metadata_and_no_relationships(minilm_path):
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=8,
                             include_prev_next_rel=False, include_metadata=False)
    nodes = parser.get_nodes_from_documents([Document(text=GOLDEN_TEXT, metadata={"title": "A"})])
    assert len(nodes) == 4
    assert all(n.metadata == {} and n.excluded_embed_metadata_keys == [] for n in nodes)
    assert all(set(n.relationships) == {NodeRelationship.SOURCE} for n in nodes)


def test_repeated_passage_keeps_exact_offsets(minilm_path):
    # str.find (LlamaIndex's post-processing) would place the second copy at the first one.
    text = "Same words here. " * 6
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=4, chunking="fixed")
    nodes = parser.get_nodes_from_documents([Document(text=text)])
    assert len(nodes) > 2
    assert all(text[n.start_char_idx:n.end_char_idx] == n.text for n in nodes)
    assert [n.start_char_idx for n in nodes] == sorted({n.start_char_idx for n in nodes})


def test_text_node_input_and_dim(minilm_path, minilm):
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=8, dim=64)
    source = TextNode(text=GOLDEN_TEXT, id_="n1")
    nodes = parser.get_nodes_from_documents([source])
    expected = minilm.late_chunk([GOLDEN_TEXT], chunk_size=8, dim=64)[0]
    assert [n.source_node.node_id for n in nodes] == ["n1"] * len(expected.chunks)
    assert all(close(n.embedding, c.embedding) for n, c in zip(nodes, expected.chunks, strict=True))
    assert len(get_global_vectors(parser.docstore, ["n1"])["n1"]) == 64


def test_async_parse_matches_sync(minilm_path):
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=8, id_func=stable_id)
    docs = [Document(text=GOLDEN_TEXT, id_="a")]
    sync = parser.get_nodes_from_documents(docs)
    result = asyncio.run(parser.acall(docs))
    assert [(n.id_, n.start_char_idx) for n in result] == [(n.id_, n.start_char_idx) for n in sync]
    assert all(close(a.embedding, b.embedding) for a, b in zip(result, sync, strict=True))


# ---------------------------------------------------------------------- bad input, empty documents
@pytest.mark.parametrize("bad, message", [
    (["plain text"], r"item 0 is str \(wrap raw text in Document"),
    ([Document(text="ok"), {"text": "x"}], "item 1 is dict"),
    ("plain text", "expects a list of LlamaIndex Documents, got str"),
    (Document(text="x"), r"got Document \(wrap it in a list\)"),
])
def test_non_document_input_is_refused(minilm_path, bad, message, model_calls):
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu")
    with pytest.raises(TypeError, match=message):
        parser.get_nodes_from_documents(bad)
    with pytest.raises(TypeError, match=message):
        asyncio.run(parser.aget_nodes_from_documents(bad))
    assert sum(model_calls.values()) == 0


@pytest.mark.parametrize("splitter", [None, SentenceSplitter(chunk_size=64, chunk_overlap=0)])
def test_empty_documents_give_no_nodes(minilm_path, splitter):
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=8, splitter=splitter)
    docs = [Document(text="", id_="e"), Document(text=GOLDEN_TEXT, id_="g"), Document(text=" \n ", id_="w")]
    nodes = parser.get_nodes_from_documents(docs)
    assert nodes and {n.ref_doc_id for n in nodes} == {"g"}
    assert parser.get_nodes_from_documents([Document(text="")]) == []
    assert parser.get_nodes_from_documents([]) == []


class _RewritingSplitter(NodeParser):
    """Nodes that are not substrings of the document (upper-cased): LlamaIndex sets no offsets."""

    def _parse_nodes(self, nodes, show_progress=False, **kwargs):
        return [n for doc in nodes
                for n in build_nodes_from_splits([doc.text.upper()], doc, id_func=self.id_func)]


class _OffsetlessSplitter(NodeParser):
    """Substring nodes, but the splitter skips LlamaIndex's post-processing: no offsets."""

    def _parse_nodes(self, nodes, show_progress=False, **kwargs):
        return [n for doc in nodes
                for n in build_nodes_from_splits(doc.text.split(" "), doc, id_func=self.id_func)]

    def _postprocess_parsed_nodes(self, nodes, parent_doc_map):
        return nodes


class _MisplacedSplitter(_OffsetlessSplitter):
    """Offsets that point at other text than the node's."""

    def _postprocess_parsed_nodes(self, nodes, parent_doc_map):
        for node in nodes:
            node.start_char_idx, node.end_char_idx = 0, len(node.text)
        return nodes


@pytest.mark.parametrize("splitter, message", [
    (_OffsetlessSplitter(), r"_OffsetlessSplitter node 0 of document 'doc-x' has no character offsets"),
    (_RewritingSplitter(), r"_RewritingSplitter node 0 of document 'doc-x' has no character offsets"),
    (_MisplacedSplitter(), r"_MisplacedSplitter node 1 of document 'doc-x': its text 'text.' is not "
                           r"the document text at \[0:5\]"),
])
def test_splitter_without_usable_offsets_is_refused(minilm_path, model_calls, splitter, message):
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", splitter=splitter)
    with pytest.raises(ValueError, match=message):
        parser.get_nodes_from_documents([Document(text="Some text.", id_="doc-x")])
    assert model_calls["late_chunk"] == 0


def test_invalid_settings_are_refused(minilm_path):
    with pytest.raises(ValueError, match="chunk_size"):
        DeweyNodeParser(model_name=minilm_path, chunk_size=0)
    with pytest.raises(ValueError, match="chunking"):
        DeweyNodeParser(model_name=minilm_path, chunking="sentences")
    with pytest.raises(TypeError, match="splitter must be a LlamaIndex NodeParser"):
        DeweyNodeParser(model_name=minilm_path, splitter="SentenceSplitter")


# ---------------------------------------------------------------------- serialisation
def test_round_trips_through_dict_and_json(minilm_path):
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=32, chunk_overlap=4,
                             dim=128, splitter=SentenceSplitter(chunk_size=200, chunk_overlap=20))
    data = parser.to_dict()
    assert data["class_name"] == "DeweyNodeParser"
    assert data["splitter"]["class_name"] == "SentenceSplitter"
    restored = DeweyNodeParser.from_dict(data)
    assert restored.to_dict() == data
    assert isinstance(restored.splitter, SentenceSplitter) and restored.splitter.chunk_overlap == 20
    assert DeweyNodeParser.from_json(parser.to_json()).to_dict() == data
    assert json.loads(parser.to_json()) == data


@pytest.mark.parametrize("splitter", [MarkdownNodeParser(include_prev_next_rel=False), _OffsetlessSplitter()])
def test_splitters_sharing_a_class_name_round_trip(minilm_path, splitter):
    # Both serialise with class_name "base_component"; the class path tells them apart.
    data = DeweyNodeParser(model_name=minilm_path, splitter=splitter).to_dict()
    assert data["splitter"]["class_name"] == "base_component"
    restored = DeweyNodeParser.from_dict(data)
    assert type(restored.splitter) is type(splitter)
    assert restored.to_dict() == data


def test_splitter_of_unknown_class_is_refused(minilm_path):
    data = DeweyNodeParser(model_name=minilm_path, splitter=_OffsetlessSplitter()).to_dict()
    data["splitter"]["class_path"] = "elsewhere.UnknownSplitter"
    with pytest.raises(ValueError, match=r"cannot restore the splitter 'elsewhere.UnknownSplitter'"):
        DeweyNodeParser.from_dict(data)
    restored = DeweyNodeParser.from_dict(data, splitter=_OffsetlessSplitter())
    assert isinstance(restored.splitter, _OffsetlessSplitter)


def test_custom_id_func_needs_to_be_passed_again(minilm_path):
    data = DeweyNodeParser(model_name=minilm_path, id_func=stable_id).to_dict()
    with pytest.raises(ValueError, match="'stable_id' cannot be rebuilt"):
        DeweyNodeParser.from_dict(data)
    assert DeweyNodeParser.from_dict(data, id_func=stable_id).id_func is stable_id


def test_pickle_does_not_carry_the_model(minilm_path):
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu")
    parser.get_nodes_from_documents([Document(text="Load the model.")])
    assert parser._encoder is not None
    copy = pickle.loads(pickle.dumps(parser))
    assert copy._encoder is None and copy.to_dict() == parser.to_dict()


def test_worker_processes_say_their_global_vectors_stay_there(minilm_path, capfd):
    # IngestionPipeline(num_workers=2) pickles the parser into spawned processes: each files the
    # global vectors into its own copy of the in-memory docstore, which the caller never sees.
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=16)
    docs = [Document(text="Saffron is the dried stigma of a crocus flower.", id_="d1"),
            Document(text="Rust is a systems language with a borrow checker.", id_="d2")]
    nodes = IngestionPipeline(transformations=[parser]).run(documents=docs, num_workers=2)
    assert {n.ref_doc_id for n in nodes} == {"d1", "d2"} and all(n.embedding for n in nodes)
    assert get_global_vectors(parser.docstore, ["d1", "d2"]) == {}
    assert "running in another process than the one that made it" in capfd.readouterr().err
    same_process = pickle.loads(pickle.dumps(parser))  # a copy in this process files quietly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same_process.get_nodes_from_documents(docs[:1])
    assert list(get_global_vectors(same_process.docstore, ["d1"])) == ["d1"]


def test_cache_hash_follows_settings(minilm_path):
    docs = [Document(text=GOLDEN_TEXT)]

    def key(**kwargs):
        return get_transformation_hash(docs, DeweyNodeParser(model_name=minilm_path, **kwargs))

    assert key(chunk_size=8) == key(chunk_size=8)
    assert len({key(chunk_size=8), key(chunk_size=16), key(chunk_size=8, dim=64),
                key(splitter=SentenceSplitter(chunk_size=100, chunk_overlap=10)),
                key(splitter=SentenceSplitter(chunk_size=200, chunk_overlap=10))}) == 5


# ---------------------------------------------------------------------- pipeline cache and docstore
def test_pipeline_cache_skips_model_work_on_second_run(minilm_path, topic_texts, model_calls, tmp_path):
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=64, id_func=stable_id)

    def documents():
        return [Document(text=topic_texts[n], id_=n) for n in ("break", "pass")]

    pipeline = IngestionPipeline(transformations=[parser], cache=IngestionCache())
    first = pipeline.run(documents=documents())
    assert model_calls["late_chunk"] == 1
    second = pipeline.run(documents=documents())
    assert model_calls["late_chunk"] == 1  # served from the cache
    assert [n.id_ for n in second] == [n.id_ for n in first]
    assert all(close(a.embedding, b.embedding) for a, b in zip(first, second, strict=True))

    pipeline.persist(str(tmp_path))  # a fresh pipeline that loads the cache does no model work either
    restored = IngestionPipeline(transformations=[parser])
    restored.load(str(tmp_path))
    third = restored.run(documents=documents())
    assert model_calls["late_chunk"] == 1
    assert [n.embedding for n in third] == [n.embedding for n in first]


def test_pipeline_docstore_skips_unchanged_documents(minilm_path, model_calls):
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=8)
    pipeline = IngestionPipeline(transformations=[parser], docstore=SimpleDocumentStore(),
                                 docstore_strategy=DocstoreStrategy.DUPLICATES_ONLY)
    docs = [Document(text=GOLDEN_TEXT, id_="g"), Document(text="Pepper is a spice.", id_="p")]
    assert len(pipeline.run(documents=docs)) == 5
    assert model_calls["late_chunk"] == 1
    assert pipeline.run(documents=[Document(text=GOLDEN_TEXT, id_="g"),
                                   Document(text="Pepper is a spice.", id_="p")]) == []
    assert model_calls["late_chunk"] == 1
    changed = pipeline.run(documents=[Document(text="Pepper is a hot spice.", id_="p")])
    assert [n.ref_doc_id for n in changed] == ["p"] and model_calls["late_chunk"] == 2


# ---------------------------------------------------------------------- the dewey_en_beta family
@pytest.fixture(scope="module")
def tiny_dewey(tmp_path_factory):
    from dewey_core.testing import tiny_dewey

    return str(tiny_dewey(tmp_path_factory.mktemp("dewey")))


def test_dewey_family_checkpoint_through_parser_and_embedding(tiny_dewey):
    from dewey_core import DeweyEncoder
    from llamaindex_dewey import DeweyEmbedding

    encoder = DeweyEncoder.from_pretrained(tiny_dewey, device="cpu")
    parser = DeweyNodeParser(model_name=tiny_dewey, device="cpu", chunk_size=8)
    nodes = parser.get_nodes_from_documents([Document(text=GOLDEN_TEXT)])
    expected = encoder.late_chunk([GOLDEN_TEXT], chunk_size=8)[0]
    assert [(n.start_char_idx, n.end_char_idx) for n in nodes] == [(c.start, c.end) for c in expected.chunks]
    assert all(close(n.embedding, c.embedding) for n, c in zip(nodes, expected.chunks, strict=True))
    assert close(get_global_vectors(parser.docstore, [nodes[0].ref_doc_id])[nodes[0].ref_doc_id],
                 expected.global_embedding)
    embed = DeweyEmbedding(model_name=tiny_dewey, device="cpu")
    # The family's own instruction prompts apply to queries and documents.
    assert close(embed.get_query_embedding("spice"), encoder.encode_queries(["spice"])[0])
    assert close(embed.get_text_embedding("spice"), encoder.encode_documents(["spice"])[0])
    assert not close(embed.get_query_embedding("spice"), embed.get_text_embedding("spice"))


def test_own_chunker_settings_do_not_matter_with_a_wrapped_splitter(minilm_path, topic_texts):
    # chunk_size / chunk_overlap configure the built-in chunker only; a splitter makes them unused.
    splitter = SentenceSplitter(chunk_size=64, chunk_overlap=0)
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", splitter=splitter,
                             chunk_size=64, chunk_overlap=64)
    nodes = parser.get_nodes_from_documents([Document(text=topic_texts["del"], id_="d")])
    assert [n.text for n in nodes] == [n.text for n in splitter.get_nodes_from_documents(
        [Document(text=topic_texts["del"], id_="d")])]


def test_a_wrapped_splitter_keeps_its_own_metadata_and_relationship_choices(minilm_path, topic_texts):
    splitter = SentenceSplitter(chunk_size=64, chunk_overlap=0, include_metadata=False,
                                include_prev_next_rel=False)
    doc = Document(text=topic_texts["del"], id_="d", metadata={"topic": "del"})
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", splitter=splitter)
    nodes = parser.get_nodes_from_documents([doc])
    plain = splitter.get_nodes_from_documents([doc])
    assert len(nodes) == len(plain) > 1
    for node, own in zip(nodes, plain, strict=True):
        assert node.metadata == own.metadata == {}
        assert set(node.relationships) == set(own.relationships) == {NodeRelationship.SOURCE}


def test_hierarchical_node_parser_every_level_in_its_document_s_context(minilm_path, minilm, topic_texts):
    from llama_index.core.node_parser import HierarchicalNodeParser, get_leaf_nodes

    splitter = HierarchicalNodeParser.from_defaults(chunk_sizes=[256, 64])
    text = topic_texts["while"] + "\n\n" + topic_texts["del"]  # several top-level chunks
    doc = Document(text=text, id_="d")
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", splitter=splitter)
    nodes = parser.get_nodes_from_documents([doc])
    plain = splitter.get_nodes_from_documents([doc])
    assert [n.text for n in nodes] == [n.text for n in plain]
    assert sum(n.parent_node is None for n in nodes) > 1 and len(get_leaf_nodes(nodes)) > 2
    spans = [(n.start_char_idx, n.end_char_idx) for n in nodes]
    assert all(text[s:e] == n.text for (s, e), n in zip(spans, nodes, strict=True))
    by_id = {n.node_id: n for n in nodes}
    for node in nodes:  # every child lies inside its parent
        if node.parent_node is not None:
            parent = by_id[node.parent_node.node_id]
            assert parent.start_char_idx <= node.start_char_idx and node.end_char_idx <= parent.end_char_idx
    [expected] = minilm.late_chunk([text], spans=[spans], allow_overlap=True)
    assert all(close(n.embedding, c.embedding) for n, c in zip(nodes, expected.chunks, strict=True))


def test_the_docstore_is_shared_by_copies_and_not_serialised(minilm_path):
    import copy

    parser = DeweyNodeParser(model_name=minilm_path, device="cpu")
    assert "docstore" not in parser.to_dict()
    assert copy.deepcopy(parser).docstore is parser.docstore
    assert parser.model_copy().docstore is parser.docstore


def test_parts_of_one_document_get_no_document_vector_and_a_warning(minilm_path, topic_texts):
    """IngestionPipeline([SentenceSplitter(), DeweyNodeParser()]): the parser sees sections of a
    document, each with the document as its source; none of their vectors is the document's."""
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=64)
    doc = Document(text=topic_texts["while"] + "\n\n" + topic_texts["break"], id_="doc-loops")
    parser.get_nodes_from_documents([doc])  # the whole document first: its vector is kept
    assert "doc-loops" in get_global_vectors(parser.docstore, ["doc-loops"])
    with pytest.warns(UserWarning, match=r"inputs that are parts of 1 document\(s\) \(e.g. 'doc-loops'\).*"
                                         r"DeweyNodeParser\(splitter=SentenceSplitter"):
        nodes = IngestionPipeline(transformations=[SentenceSplitter(chunk_size=128, chunk_overlap=0),
                                                   parser]).run(documents=[doc])
    assert {n.ref_doc_id for n in nodes} == {"doc-loops"}
    assert get_global_vectors(parser.docstore, ["doc-loops"]) == {}  # the stale one is gone too
    with warnings.catch_warnings():  # the same document twice is not parts of one
        warnings.simplefilter("error")
        parser.get_nodes_from_documents([doc, doc])


def test_the_chunks_it_embeds_are_reported_as_embedding_events(minilm_path, topic_texts):
    """TokenCountingHandler and instrumentation see the parser's embeddings, as an embedding
    model's: one event per late-chunking call, every node's text and vector in it."""
    from typing import ClassVar

    import llama_index.core.instrumentation as instrument
    from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent

    class Ends(BaseEventHandler):
        seen: ClassVar[list] = []

        def handle(self, event, **kwargs) -> None:
            if isinstance(event, EmbeddingEndEvent):
                self.seen.append(event)

    ends = Ends()
    instrument.get_dispatcher().add_event_handler(ends)
    counter = TokenCountingHandler(tokenizer=str.split)
    parser = DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=64,
                             callback_manager=CallbackManager([counter]))
    try:
        nodes = parser.get_nodes_from_documents([Document(text=topic_texts["while"]),
                                                 Document(text=topic_texts["break"])])
    finally:
        instrument.get_dispatcher().event_handlers.remove(ends)
    (event,) = ends.seen
    assert event.chunks == [n.text for n in nodes]
    assert all(close(v, n.embedding) for v, n in zip(event.embeddings, nodes, strict=True))
    assert counter.total_embedding_token_count == sum(len(n.text.split()) for n in nodes) > 0

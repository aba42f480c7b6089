"""Spans from each framework's own splitter leave no word outside its chunk, on byte-level BPE.

LangChain's RecursiveCharacterTextSplitter, LlamaIndex's SentenceSplitter and Haystack's
DocumentSplitter all strip or cut at whitespace, so their spans start at a word's first letter,
while a byte-level BPE token (dewey_en_beta's ModernBERT tokenizer, Qwen2's for Jasper and
Stella) starts at the space before it. Each chunk must hold every word inside its span, and its
vector must equal a reference computed from the tokenizer's offsets and a plain forward pass.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from dewey_core import DeweyEncoder
from dewey_core.testing import tiny_dewey, tiny_stella
from dewey_core.testing.reference import reference_chunks

TOPICS = ("assignment", "if", "import", "try")


def langchain_spans(text: str) -> list[tuple[int, int]]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=300, chunk_overlap=60, add_start_index=True)
    return [(d.metadata["start_index"], d.metadata["start_index"] + len(d.page_content))
            for d in splitter.create_documents([text])]


def llamaindex_spans(text: str) -> list[tuple[int, int]]:
    from llama_index.core import Document
    from llama_index.core.node_parser import SentenceSplitter

    nodes = SentenceSplitter(chunk_size=80, chunk_overlap=16).get_nodes_from_documents(
        [Document(text=text)])
    return [(n.start_char_idx, n.end_char_idx) for n in nodes]


def haystack_spans(text: str) -> list[tuple[int, int]]:
    from haystack import Document
    from haystack.components.preprocessors import DocumentSplitter

    splitter = DocumentSplitter(split_by="word", split_length=40, split_overlap=8)
    splitter.warm_up()
    docs = splitter.run(documents=[Document(content=text)])["documents"]
    return [(d.meta["split_idx_start"], d.meta["split_idx_start"] + len(d.content)) for d in docs]


SPLITTERS = {"langchain": langchain_spans, "llamaindex": llamaindex_spans, "haystack": haystack_spans}


@pytest.fixture(scope="module", params=["dewey (ModernBERT BPE)", "stella (Qwen2 BPE)"])
def bpe(request, tmp_path_factory) -> DeweyEncoder:
    build = tiny_dewey if request.param.startswith("dewey") else tiny_stella
    return DeweyEncoder.from_pretrained(build(tmp_path_factory.mktemp("bpe")), device="cpu")


@pytest.mark.parametrize("framework", list(SPLITTERS))
def test_splitter_spans_keep_every_word_in_its_chunk(bpe, framework, pydoc_topics):
    for topic in TOPICS:
        text = pydoc_topics[topic][:1500]  # one window of the tiny models, like the reference
        spans = SPLITTERS[framework](text)
        assert len(spans) >= 3 and all(text[s:e].strip() for s, e in spans)
        (tok,) = bpe.model.tokenizer.tokenize([text], bpe.model.prompts.document)
        doc = bpe.late_chunk([text], spans=[spans], allow_overlap=True)[0]
        assert doc.num_windows == 1
        words = [m.span() for m in re.finditer(r"\S+", text)]
        np.testing.assert_allclose(doc.chunk_embeddings, reference_chunks(bpe, text, spans),
                                   atol=1e-5)
        for start, end in spans:
            first, last = tok.token_range(start, end)
            for w0, w1 in (w for w in words if start <= w[0] and w[1] <= end):
                carriers = [i for i in range(len(tok)) if tok.starts[i] < w1 and tok.ends[i] > w0]
                assert all(first <= i < last for i in carriers), (framework, topic, text[w0:w1])

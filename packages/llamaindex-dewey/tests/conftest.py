"""Fixtures for the llamaindex-dewey tests: a pydoc subset as Documents, and model-call counters."""

from __future__ import annotations

import pytest
from llama_index.core import Document
from llama_index.core.ingestion import IngestionPipeline

from llamaindex_dewey import DeweyNodeParser

CHUNK_SIZE = 64
"""Tokens per chunk for the pydoc subset: several nodes per topic."""

# Short reference topics (about 2K tokens together) keep the suite fast on a 2-core CPU.
TOPICS = ["assert", "break", "del", "global", "lambda", "pass", "return", "while", "yield"]

# Questions over TOPICS and the topic that answers each.
QUESTIONS = {
    "How do I delete a name binding?": "del",
    "How do I exit a loop early?": "break",
    "What is an anonymous function?": "lambda",
    "How do I declare that a variable inside a function refers to a module-level name?": "global",
    "When is an assertion checked?": "assert",
}


@pytest.fixture(scope="session")
def topic_texts(pydoc_topics) -> dict[str, str]:
    return {name: pydoc_topics[name] for name in TOPICS}


def stable_id(i: int, doc) -> str:
    """A deterministic node id function: ``<document id>:<position>``."""
    return f"{doc.node_id}:{i}"


@pytest.fixture(scope="session")
def pipeline_parser(minilm_path) -> DeweyNodeParser:
    return DeweyNodeParser(model_name=minilm_path, device="cpu", chunk_size=CHUNK_SIZE, id_func=stable_id)


@pytest.fixture(scope="session")
def questions() -> dict[str, str]:
    return dict(QUESTIONS)


@pytest.fixture(scope="session")
def pipeline_nodes(pipeline_parser, topic_texts):
    """The pydoc subset through ``IngestionPipeline(transformations=[DeweyNodeParser(...)])``, once."""
    parser = pipeline_parser
    docs = [Document(text=t, id_=f"pydoc-{n}", metadata={"topic": n}) for n, t in topic_texts.items()]
    return IngestionPipeline(transformations=[parser]).run(documents=docs)


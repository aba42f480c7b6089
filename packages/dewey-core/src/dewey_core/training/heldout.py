"""A retrieval task built from held-out documents: find the chunk a removed sentence came from.

For each held-out document a few prose sentences are taken out of the text (the inverse cloze
task): the sentence becomes the query, and the relevant chunk is the chunk of the remaining
text that held the sentence's neighbour in its paragraph. The query's own words are no longer
in any chunk, so it is found by meaning and by context, not by string match. Chunks come from
the student's built-in chunker; every method ranks all chunks of all held-out documents.

Example:
    >>> from dewey_core.training.heldout import sentence_removal_set
    >>> text = "Title\\n\\nThe cat sat on the warm mat by the door all day. Then it slept."
    >>> data = sentence_removal_set([text], lambda t: [(0, len(t))], queries_per_document=1,
    ...                             min_words=8)
    >>> data.queries, data.texts
    (['The cat sat on the warm mat by the door all day.'], ['Title\\n\\nThen it slept.'])
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dewey_core.encoder import DeweyEncoder
from dewey_core.evaluation.runner import chunk_ranking_metrics, ndcg_at_10, recall_at_1

_PARAGRAPH = re.compile(r"\S(?:.*?\S)?(?=\n\s*\n|\s*\Z)", re.S)
_SENTENCE = re.compile(r"\S.*?(?:[.!?](?=\s|\Z)|\Z)", re.S)


@dataclass(frozen=True)
class HeldOutRetrievalSet:
    texts: list[str]
    """The held-out documents with their query sentences removed."""
    spans: list[list[tuple[int, int]]]
    """Chunk character spans per text."""
    queries: list[str]
    relevant: list[int]
    """Per query, the index of its relevant chunk among all chunks (documents in order)."""

    @property
    def doc_of_chunk(self) -> list[int]:
        return [d for d, spans in enumerate(self.spans) for _ in spans]


def _is_prose(paragraph: str) -> bool:
    lines = paragraph.splitlines()
    indented = sum(line.startswith("   ") for line in lines[1:])  # listings are indented
    letters = sum(c.isalpha() or c.isspace() for c in paragraph)
    return indented == 0 and letters >= 0.85 * len(paragraph) and "::=" not in paragraph


def _paragraph_sentences(text: str) -> list[list[tuple[int, int]]]:
    """Sentence spans of each prose paragraph with two or more sentences (the opening
    paragraph, usually a title, left out)."""
    groups = []
    for p, para in enumerate(_PARAGRAPH.finditer(text)):
        if p == 0 or not _is_prose(para.group()):
            continue
        sentences = [(para.start() + m.start(), para.start() + m.end())
                     for m in _SENTENCE.finditer(para.group())]
        if len(sentences) >= 2:
            groups.append(sentences)
    return groups


def sentence_removal_set(documents: Sequence[str], chunk_spans: Callable[[str], list[tuple[int, int]]],
                         *, queries_per_document: int = 32, seed: int = 0, min_words: int = 8,
                         max_words: int = 40) -> HeldOutRetrievalSet:
    """Take up to ``queries_per_document`` sentences (never two neighbours) out of each
    document; ``chunk_spans`` chunks the remaining text."""
    rng = random.Random(f"sentence-removal-{seed}")
    texts, all_spans, queries, relevant = [], [], [], []
    offset = 0
    for text in documents:
        picked: list[tuple[int, int, bool]] = []  # (start, end, first in its paragraph)
        taken: set[tuple[int, int]] = set()
        groups = _paragraph_sentences(text)
        options = [(g, i) for g, group in enumerate(groups) for i in range(len(group))]
        rng.shuffle(options)
        for g, i in options:
            start, end = groups[g][i]
            words = len(text[start:end].split())
            if not min_words <= words <= max_words or {(g, i - 1), (g, i + 1)} & taken:
                continue
            taken.add((g, i))
            picked.append((start, end, i == 0))
            if len(picked) == queries_per_document:
                break
        picked.sort()
        kept, asked, at = [], [], 0
        for start, end, first in picked:
            kept.append(text[at:start])
            while end < len(text) and text[end] == " ":
                end += 1
            before = "".join(kept)
            # The neighbour in the paragraph: the next sentence for a first sentence (its first
            # character), else the previous one (its last non-space character).
            anchor = len(before) if first else len(before.rstrip()) - 1
            asked.append((" ".join(text[start:end].split()), anchor))
            at = end
        kept.append(text[at:])
        reduced = "".join(kept)
        spans = chunk_spans(reduced)
        for query, anchor in asked:
            # A splitter may leave text between chunks out: a query whose neighbour is in no
            # chunk has no relevant chunk and is left out.
            chunk = next((j for j, (s, e) in enumerate(spans) if s <= anchor < e), None)
            if chunk is not None:
                queries.append(query)
                relevant.append(offset + chunk)
        texts.append(reduced)
        all_spans.append(spans)
        offset += len(spans)
    return HeldOutRetrievalSet(texts, all_spans, queries, relevant)


def evaluate_held_out_retrieval(encoder: DeweyEncoder, data: HeldOutRetrievalSet, *,
                                context_tokens: int | None = None,
                                window_overlap: int | None = None) -> dict[str, float]:
    """Recall@1 and nDCG@10 of the relevant chunk for each chunk-embedding method (late chunking
    with the run's window settings)."""
    if not data.queries:
        return {}
    queries = encoder.encode_queries(data.queries)
    chunk_texts = [t[s:e] for t, spans in zip(data.texts, data.spans, strict=True) for s, e in spans]
    late = encoder.late_chunk(data.texts, spans=data.spans, context_tokens=context_tokens,
                              window_overlap=window_overlap)
    late_chunks = np.concatenate([d.chunk_embeddings for d in late])
    doc_of_chunk = data.doc_of_chunk
    globals_ = np.stack([d.global_embedding for d in late])[doc_of_chunk]
    runs = {"naive": (encoder.encode_documents(chunk_texts), None),
            "late": (late_chunks, None), "late + fusion": (late_chunks, globals_)}
    scores = {}
    for method, (vectors, doc_globals) in runs.items():
        ranks = chunk_ranking_metrics(queries, vectors, doc_of_chunk, data.relevant, doc_globals)
        scores[f"{method} recall@1"] = recall_at_1(ranks)
        scores[f"{method} ndcg@10"] = ndcg_at_10(ranks)
    return scores

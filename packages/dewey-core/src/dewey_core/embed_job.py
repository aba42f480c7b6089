"""What both ways of running ``dewey embed`` share (one process, or ``--ray``): the options, the
choice of the documents to embed, and the closing report.

Example:
    >>> from dewey_core.corpus import SourceDocument
    >>> docs = [SourceDocument("a", "x", "1"), SourceDocument("b", "y", "2"), SourceDocument("a", "z", "3")]
    >>> [(status, getattr(item, "doc_id", item.origin)) for status, item in classify(docs, {"b"})]
    [('new', 'a'), ('done', 'b'), ('failed', '3')]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from dewey_core.corpus import SourceDocument, SourceError

DEFAULT_MODEL = "infgrad/dewey_en_beta"
NEW, DONE, FAILED = "new", "done", "failed"


@dataclass(frozen=True)
class EmbedOptions:
    """How documents are late-chunked. All but ``device`` and ``dtype`` are recorded in the
    manifest: a store is resumed only with the same settings."""

    model: str = DEFAULT_MODEL
    chunk_size: int = 256
    chunk_overlap: int = 0
    dim: int | None = None
    max_length: int | None = None
    context_tokens: int | None = None
    window_overlap: int | None = None
    device: str | None = None
    dtype: str | None = None

    def settings(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("device", "dtype")}

    def load_encoder(self):
        from dewey_core import DeweyEncoder

        # The job only late-chunks: a trained folder's starting weights (queries) are not loaded.
        return DeweyEncoder.from_pretrained(self.model, device=self.device, dtype=self.dtype,
                                            max_length=self.max_length, plain_model=False)

    def late_chunk(self, encoder, texts: list[str]):
        return encoder.late_chunk(texts, chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap,
                                  dim=self.dim, context_tokens=self.context_tokens,
                                  window_overlap=self.window_overlap, show_progress=False)

    def check(self):
        """Load the model and check every option on it (late_chunk of no documents, no model pass);
        returns ``(encoder, dimension of the stored vectors)``. Raises ``OSError``, ``ValueError``
        or ``TypeError`` naming the problem."""
        encoder = self.load_encoder()
        self.late_chunk(encoder, [])
        return encoder, self.dim or encoder.dimension


def classify(items: Iterable[SourceDocument | SourceError], done: set[str] | frozenset[str],
             ) -> Iterator[tuple[str, SourceDocument | SourceError]]:
    """``(status, item)`` for each item in input order: :data:`FAILED` for a :class:`SourceError`
    or a repeated id (the first document with an id is kept), :data:`DONE` for a document already
    stored, :data:`NEW` for one to embed."""
    seen: set[str] = set()
    for item in items:
        if isinstance(item, SourceDocument) and item.doc_id in seen:
            item = SourceError(item.origin, f"duplicate document id {item.doc_id!r}; only the first is kept")
        if isinstance(item, SourceError):
            yield FAILED, item
            continue
        seen.add(item.doc_id)
        yield (DONE if item.doc_id in done else NEW), item


def cannot_read(error: SourceError) -> str:
    """The line printed as soon as an input turns out unreadable."""
    return f"dewey embed: cannot read {error.origin}: {error.reason}"


@dataclass
class EmbedReport:
    """What a run of ``dewey embed`` did."""

    out: str
    embedded: int = 0
    """Documents embedded and committed by this run."""
    chunks: int = 0
    stored: int = 0
    """Documents in OUT after this run (earlier runs' included)."""
    failures: list[SourceError] = field(default_factory=list)
    """Inputs that could not be read (or repeated an id), in the order they were met."""

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def summary(self) -> str:
        lines = [f"dewey embed: {self.embedded} documents ({self.chunks} chunks) embedded now, "
                 f"{self.stored} stored in {self.out}"
                 + (f", {len(self.failures)} skipped:" if self.failures else "")]
        lines += [f"  {f.origin}: {f.reason}" for f in self.failures]
        return "\n".join(lines)

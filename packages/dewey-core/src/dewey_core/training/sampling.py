"""What one training step sees, drawn from a seeded generator (the same seed and step always
draw the same batch, so a resumed run takes the batches of an uninterrupted one).

- Chunk alignment: runs of consecutive windows up to ``windows_per_step`` windows. Documents
  are drawn in proportion to their windows (every token about equally often); a document that
  fits the remaining budget is taken whole (its global vector is trained too), a longer one as
  a run of windows at a random place. With ``crop_share``, that share of the draws cuts the
  document to an opening of its own (see :meth:`DocumentPlans.opening`), trained whole.
- Distillation: ``batch_size`` passages, each a chunk of a document drawn in proportion to its
  tokens.
Each draw picks one of the chunk sizes, so the model learns chunks of every size asked for.
"""

from __future__ import annotations

import random
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence

from dewey_core.inputs import check_spans
from dewey_core.training.corpus import Document
from dewey_core.training.forward import DocumentPlan, TrainingForward, WindowRun

Splitter = Callable[[str], Sequence[tuple[int, int]]]
"""Any splitter: a function from a text to its chunks' ``(start, end)`` character spans."""

#: Where an opening may be cut: after a paragraph or a sentence (not a wrapped line).
_CUTS = re.compile(r"\n\s*\n|(?<=[.!?:;])\s+")

#: Draws that may fail to add a run (no chunk inside it) before a step settles for what it has.
_MAX_MISSES = 50


class DocumentPlans:
    """Each training document's plan per chunk size, made when first needed."""

    def __init__(self, forward: TrainingForward, documents: Sequence[Document],
                 chunk_sizes: Sequence[int], splitter: Splitter | None = None,
                 chunk_overlap: int = 0) -> None:
        self.forward, self.documents = forward, list(documents)
        self.chunk_sizes, self.splitter, self.chunk_overlap = tuple(chunk_sizes), splitter, chunk_overlap
        self._plans: dict[tuple[int, int], DocumentPlan] = {}
        self.windows = [len(self.plan(d).windows) for d in range(len(self.documents))]
        self.tokens = [len(self.plan(d).tok) for d in range(len(self.documents))]

    def plan(self, doc: int, chunk_size: int | None = None, end: int | None = None) -> DocumentPlan:
        """Document ``doc`` planned with ``chunk_size``; with ``end``, only ``text[:end]``."""
        size = self.chunk_sizes[0] if chunk_size is None or self.splitter else chunk_size
        key = (doc, size, end)
        if key not in self._plans:
            text = self.documents[doc].text[:end]
            if self.splitter is not None:
                spans = check_spans([list(self.splitter(text))], [text], allow_overlap=True)[0]
                self._plans[key] = self.forward.plan(text, spans=spans)
            else:
                self._plans[key] = self.forward.plan(text, chunk_size=size,
                                                     chunk_overlap=self.chunk_overlap)
        return self._plans[key]

    def opening(self, doc: int, chunk_size: int, rng: random.Random) -> DocumentPlan:
        """Document ``doc`` cut after a random paragraph or sentence of its first window: a short
        document of its own. Corpora of long texts hold few short documents, and drawing by
        windows rarely draws those; openings teach short documents (one window, no carried
        context) as well. An opening keeps at least twice the smallest chunk size in tokens
        where the first window allows it."""
        full = self.plan(doc, chunk_size)
        if not len(full.tok):
            return full
        in_window = full.windows[0].kept[1]
        window_end = full.tok.ends[in_window - 1]
        shortest = min(in_window, 2 * min(self.chunk_sizes))
        # A cut keeps the tokens that end at or before it: at least ``shortest`` of them.
        cuts = [m.start() for m in _CUTS.finditer(full.text, 0, window_end)
                if bisect_right(full.tok.ends, m.start()) >= shortest]
        end = rng.choice([*cuts, window_end])
        return full if end >= len(full.text.rstrip()) else self.plan(doc, chunk_size, end)


def draw_window_runs(plans: DocumentPlans, windows_per_step: int, rng: random.Random,
                     crop_share: float = 0.0) -> list[WindowRun]:
    """Runs of windows filling ``windows_per_step``, each with at least one chunk; a
    ``crop_share`` of the draws is a document's opening, whole."""
    runs: list[WindowRun] = []
    left, misses = windows_per_step, 0
    while left > 0 and misses < _MAX_MISSES:
        doc = rng.choices(range(len(plans.documents)), weights=plans.windows)[0]
        size = rng.choice(plans.chunk_sizes)
        if crop_share and rng.random() < crop_share:
            run = plans.opening(doc, size, rng).whole()
        else:
            plan = plans.plan(doc, size)
            n = len(plan.windows)
            first = 0 if n <= left else rng.randrange(n - left + 1)
            run = plan.run(first, first + min(n, left))
        if not run.chunks:
            misses += 1
            continue
        runs.append(run)
        left -= run.num_windows
    if not runs:
        raise ValueError(f"no chunk fits in {windows_per_step} window(s) of this corpus: lower the "
                         "chunk size or raise windows_per_step")
    return runs


def draw_passages(plans: DocumentPlans, batch_size: int, rng: random.Random) -> list[str]:
    """``batch_size`` chunk texts (distinct where the corpus allows)."""
    passages: list[str] = []
    seen: set[str] = set()
    misses = 0
    while len(passages) < batch_size:
        doc = rng.choices(range(len(plans.documents)), weights=plans.tokens)[0]
        plan = plans.plan(doc, rng.choice(plans.chunk_sizes))
        text = plan.text[slice(*plan.spans[rng.randrange(len(plan.spans))])] if plan.spans else ""
        usable = bool(text.strip())
        if not usable or (text in seen and misses < _MAX_MISSES):  # a tiny corpus may repeat
            misses += 1
            if misses > 10 * _MAX_MISSES:
                raise ValueError("the corpus yields no passages to train on (no non-empty chunks)")
            continue
        seen.add(text)
        passages.append(text)
    return passages

"""The engine's encoding paths with gradients: late chunking and plain encoding for training.

Inference runs under ``torch.inference_mode``; training needs the same computation with an
autograd graph. Nothing here re-implements the engine: documents are tokenised by the model's
:class:`~dewey_core.tokenization.TextTokenizer`, chunked by the built-in chunker (or given
character spans, mapped with ``TokenizedText.token_range``), windowed by
:func:`~dewey_core.windowing.plan_windows` (carried opening and overlap as in ``late_chunk``),
run by :func:`~dewey_core.runtime.run_sequences` and pooled by the encoder's own late-chunking
pooler. So a trained model is optimised for exactly what ``DeweyEncoder.late_chunk`` computes
(``tests/test_training_forward.py`` checks that they agree to float precision).

A long document may be trained on a *run* of consecutive windows: each window's states depend
only on its own tokens (opening, overlap, new tokens), so a run computes exactly what the full
document computes for the chunks that lie inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from dewey_core.chunking import char_spans, chunk_token_ranges
from dewey_core.encoder import DeweyEncoder, _DocumentPooler
from dewey_core.pooling import pool
from dewey_core.runtime import run_sequences
from dewey_core.tokenization import TokenizedText
from dewey_core.windowing import Window, WindowPolicy, plan_windows


@dataclass(frozen=True)
class DocumentPlan:
    """One document as late chunking sees it."""

    text: str
    tok: TokenizedText
    ranges: list[tuple[int, int]]
    """Chunk token ranges ``[first, last)``."""
    spans: list[tuple[int, int]]
    """Chunk character spans, in the same order."""
    windows: list[Window]

    def run(self, first: int, last: int) -> WindowRun:
        """Windows ``[first, last)`` and the chunks whose tokens all lie in them."""
        if not 0 <= first < last <= len(self.windows):
            raise ValueError(f"window run [{first}, {last}) outside a document of "
                             f"{len(self.windows)} windows")
        low, high = self.windows[first].kept[0], self.windows[last - 1].kept[1]
        inside = [j for j, (a, b) in enumerate(self.ranges) if low <= a < b <= high]
        return WindowRun(self, first, last, inside)

    def whole(self) -> WindowRun:
        return self.run(0, len(self.windows))


@dataclass(frozen=True)
class WindowRun:
    plan: DocumentPlan
    first: int
    last: int
    chunks: list[int]
    """Indices into ``plan.ranges`` / ``plan.spans`` of the chunks this run computes."""

    @property
    def complete(self) -> bool:
        """The run covers the whole document, so its global vector is the document's."""
        return self.first == 0 and self.last == len(self.plan.windows)

    @property
    def num_windows(self) -> int:
        return self.last - self.first


class TrainingForward:
    """Differentiable late chunking and encoding with an encoder's model and settings.

    Gradients flow when autograd is enabled (the default outside ``torch.no_grad``).
    """

    def __init__(self, encoder: DeweyEncoder, policy: WindowPolicy | None = None) -> None:
        policy = policy or WindowPolicy()
        policy.resolve(encoder.window_capacity())  # settings that fit no window fail here
        self.encoder, self.model, self.policy = encoder, encoder.model, policy

    # ------------------------------------------------------------------ planning
    def plan(self, text: str, *, chunk_size: int = 256, chunk_overlap: int = 0,
             chunking: str = "boundaries",
             spans: Sequence[tuple[int, int]] | None = None) -> DocumentPlan:
        """Tokenise, chunk (built-in chunker, or the character ``spans`` given) and window."""
        tokenizer = self.model.tokenizer
        tok = tokenizer.tokenize([text], self.model.prompts.document)[0]
        if spans is None:
            ranges = chunk_token_ranges(text, tok, chunk_size, chunk_overlap, chunking)
            spans = char_spans(text, tok, ranges)
        else:
            spans = [tuple(s) for s in spans]
            ranges = [tok.token_range(s, e) if len(tok) else (0, 0) for s, e in spans]
        windows = plan_windows(0, tok, tokenizer.prefix_ids, tokenizer.suffix_ids,
                               self.encoder.max_length, self.policy)
        return DocumentPlan(text, tok, list(ranges), list(spans), windows)

    # ------------------------------------------------------------------ forward passes
    def late_chunk(self, runs: Sequence[WindowRun]) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """Per run: its chunks' vectors ``(len(run.chunks), d)`` and, for complete runs, the
        document's global vector ``(d,)`` (``None`` otherwise); the model's heads applied, not
        normalised."""
        toks = [r.plan.tok for r in runs]
        ranges = [[r.plan.ranges[j] for j in r.chunks] for r in runs]
        windows = [replace(w, doc=i) for i, r in enumerate(runs) for w in r.plan.windows[r.first:r.last]]
        pooler = _DocumentPooler(self.model.pooling, toks, ranges, windows)
        self._run([w.ids for w in windows], pooler.consume)
        pooled_globals = pooler.global_vectors()
        # A partial run's global slot is never used; a zero keeps the pooler's arithmetic defined.
        zero = torch.zeros(self.model.hidden_size, dtype=torch.float32, device=self.model.device)
        pooled_globals = [g if r.complete else zero for g, r in zip(pooled_globals, runs, strict=True)]
        chunk_lists = pooler.chunk_vectors(pooled_globals)
        sizes = [len(c) for c in chunk_lists]
        heads = self.model.project(torch.cat([*chunk_lists, torch.stack(pooled_globals)]), None)
        chunk_out = list(torch.split(heads[: sum(sizes)], sizes))
        global_out = [heads[sum(sizes) + i] if r.complete else None for i, r in enumerate(runs)]
        return chunk_out, global_out

    def encode(self, texts: Sequence[str], prompt: str | None = None) -> torch.Tensor:
        """Plain encoding as ``encode_documents`` (``prompt`` default: the document prompt):
        head outputs ``(n, d)``, not normalised. Texts longer than a window keep their first
        tokens (the first window of :func:`plan_windows` is exactly that truncation)."""
        tokenizer = self.model.tokenizer
        prompt = self.model.prompts.document if prompt is None else prompt
        toks = tokenizer.tokenize(list(texts), prompt)
        windows = [plan_windows(i, t, tokenizer.prefix_ids, tokenizer.suffix_ids,
                                self.encoder.max_length, WindowPolicy())[0] for i, t in enumerate(toks)]
        pooled: list[torch.Tensor | None] = [None] * len(windows)

        def consume(i: int, states: torch.Tensor) -> None:
            pooled[i] = pool(states, self.model.pooling, windows[i].layout)

        self._run([w.ids for w in windows], consume)
        return self.model.project(torch.stack(pooled), None)

    def _run(self, sequences: list[list[int]], consume) -> None:
        enc = self.encoder
        run_sequences(self.model.forward, sequences, consume, pad_id=self.model.tokenizer.pad_id,
                      device=self.model.device, token_budget=enc.token_budget,
                      max_batch_size=enc.batch_size, packed=enc.packed,
                      flash=self.model.packing == "flash", show_progress=False,
                      grad=torch.is_grad_enabled())


"""The frozen teacher's targets, computed once per text and cached.

Chunk alignment pulls each late-chunked chunk vector towards the teacher's embedding of *the
chunk told its context*, and the global vector towards the teacher's embedding of the document:

- ``chunk_context="opening"`` (default): the document's opening (its title, or its first
  sentence, at most ``opening_tokens`` tokens) is written in front of the chunk, so the target
  says what the chunk is about even when the chunk never names it ("Ardenvale is a town ...
  Its economy depends on saffron."). A chunk that starts inside the opening is embedded as is.
- ``chunk_context="none"``: the chunk alone (plain self-distillation: late chunks pulled
  towards per-chunk embeddings).

The document target is the teacher's ``late_chunk`` global vector: the teacher's embedding of
the whole text when it fits the teacher's window, and its windowed pooling when it does not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch

from dewey_core.encoder import DeweyEncoder
from dewey_core.tokenization import TokenizedText

CHUNK_CONTEXTS = ("opening", "none")
# The opening ends at the first paragraph break or sentence end, whichever comes first.
_OPENING_END = re.compile(r"\n\s*\n|[.!?](?=\s|$)")


def opening_span(text: str, tok: TokenizedText, opening_tokens: int) -> tuple[int, int]:
    """Character span of the document's opening: up to its first paragraph break or sentence
    end within its first ``opening_tokens`` tokens (all of them when there is neither)."""
    if not len(tok):
        return 0, 0
    start = tok.starts[0]
    limit = tok.ends[min(opening_tokens, len(tok)) - 1]
    match = _OPENING_END.search(text, start, limit)
    end = (match.start() + (1 if text[match.start()] in ".!?" else 0)) if match else limit
    return start, max(end, start)


def chunk_target_text(text: str, span: tuple[int, int], opening: tuple[int, int],
                      chunk_context: str) -> str:
    """What the teacher embeds for the chunk at ``span`` of ``text``."""
    chunk = text[span[0]:span[1]]
    if chunk_context == "none" or span[0] < opening[1] or opening[1] <= opening[0]:
        return chunk
    return f"{text[opening[0]:opening[1]]}\n\n{chunk}"


class TeacherTargets:
    """Teacher embeddings (L2-normalised) by text, each text encoded once."""

    def __init__(self, teacher: DeweyEncoder, device: torch.device) -> None:
        self.teacher, self.device = teacher, device
        self._texts: dict[str, np.ndarray] = {}
        self._documents: dict[str, np.ndarray] = {}

    def texts(self, texts: Sequence[str]) -> torch.Tensor:
        """``encode_documents`` of each text, ``(n, d)``."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._texts))
        if missing:
            for t, v in zip(missing, self.teacher.encode_documents(missing), strict=True):
                self._texts[t] = v
        return self._stack([self._texts[t] for t in texts])

    def documents(self, texts: Sequence[str]) -> torch.Tensor:
        """The teacher's ``late_chunk`` global vector of each document, ``(n, d)``."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._documents))
        if missing:
            docs = self.teacher.late_chunk(missing, spans=[[] for _ in missing])
            for t, d in zip(missing, docs, strict=True):
                self._documents[t] = d.global_embedding
        return self._stack([self._documents[t] for t in texts])

    def _stack(self, vectors: list[np.ndarray]) -> torch.Tensor:
        if not vectors:
            return torch.zeros((0, self.teacher.dimension), device=self.device)
        return torch.from_numpy(np.stack(vectors)).to(self.device)

"""The training corpus: read it strictly, and split off the held-out documents.

A corpus is a folder of ``.txt``/``.md`` files or a JSONL file (the formats ``dewey embed``
reads), or texts given in Python. Unlike ``dewey embed``, which skips what it cannot read,
training refuses the whole corpus when any file is unreadable: a model trained on part of the
data the user meant is a silent error.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("dewey_core")

#: Unreadable inputs named in one error before it says "... and N more".
_SHOWN_ERRORS = 10


class CorpusError(ValueError):
    """The corpus cannot be trained on (missing, unreadable, empty, too small to split)."""


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str


@dataclass(frozen=True)
class CorpusSplit:
    train: list[Document]
    held_out: list[Document]
    """Documents used for evaluation only, never for training."""


Corpus = str | os.PathLike | Sequence[str] | Mapping[str, str]


def read_corpus(corpus: Corpus) -> list[Document]:
    """Every document of ``corpus`` in a stable order; empty ones are left out with a warning.

    Raises :class:`CorpusError` naming every unreadable file or JSONL line, duplicate ids, or a
    corpus with no text at all.
    """
    if isinstance(corpus, (str, os.PathLike)):
        documents = _read_path(Path(corpus))
    elif isinstance(corpus, Mapping):
        documents = [Document(str(k), _text(v, k)) for k, v in corpus.items()]
    elif isinstance(corpus, Sequence):
        documents = [Document(f"text-{i}", _text(t, i)) for i, t in enumerate(corpus)]
    else:
        raise TypeError(f"corpus must be a path, a list of texts or a dict of id -> text, "
                        f"got {type(corpus).__name__}")
    empty = [d.doc_id for d in documents if not d.text.strip()]
    if empty:
        logger.warning("%d document(s) with no text are left out of training: %s", len(empty),
                       ", ".join(empty[:_SHOWN_ERRORS]) + (" ..." if len(empty) > _SHOWN_ERRORS else ""))
    documents = [d for d in documents if d.text.strip()]
    if not documents:
        raise CorpusError(f"the corpus {_name(corpus)} holds no text to train on")
    return documents


def split_corpus(documents: Sequence[Document], held_out_fraction: float, seed: int) -> CorpusSplit:
    """Hold out ``ceil(fraction * n)`` documents, chosen by a seeded shuffle of their ids (the
    same corpus and seed always hold out the same documents). A fraction of 0 holds none. A
    document whose text is also held out under another id (a copied file) is not trained on."""
    if not 0 <= held_out_fraction < 1:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    n_held = math.ceil(held_out_fraction * len(documents))
    if n_held and len(documents) - n_held < 1:
        raise CorpusError(f"a corpus of {len(documents)} document(s) cannot keep {n_held} held out "
                          "and still train on one; add documents or set the held-out fraction to 0")
    ids = sorted(d.doc_id for d in documents)
    held = set(random.Random(f"held-out-{seed}").sample(ids, n_held))
    held_out = [d for d in documents if d.doc_id in held]
    held_texts = {d.text for d in held_out}
    train = [d for d in documents if d.doc_id not in held and d.text not in held_texts]
    if held_out and not train:
        raise CorpusError("every document's text is also held out (the corpus repeats its texts under "
                          "other ids); add documents or set the held-out fraction to 0")
    return CorpusSplit(train, held_out)


def _text(value, key) -> str:
    if not isinstance(value, str):
        raise TypeError(f"corpus[{key!r}] must be str, got {type(value).__name__}")
    return value


def _name(corpus: Corpus) -> str:
    return str(corpus) if isinstance(corpus, (str, os.PathLike)) else "given"


def _read_path(path: Path) -> list[Document]:
    from dewey_core.corpus import Corpus as SourceCorpus
    from dewey_core.corpus import SourceError

    try:
        source = SourceCorpus.open(path)
    except FileNotFoundError:
        raise CorpusError(f"corpus not found: {path}") from None
    except ValueError:
        raise CorpusError(f"the corpus must be a folder of .txt/.md files, a .jsonl file or "
                          f"Parquet: {path}") from None
    documents, errors, seen = [], [], set()
    for item in source.scan():
        if isinstance(item, SourceError):
            errors.append(f"{item.origin}: {item.reason}")
        elif item.doc_id in seen:
            errors.append(f"{item.origin}: duplicate document id {item.doc_id!r}")
        else:
            seen.add(item.doc_id)
            documents.append(Document(item.doc_id, item.text))
    if errors:
        shown = "\n  ".join(errors[:_SHOWN_ERRORS])
        more = f"\n  ... and {len(errors) - _SHOWN_ERRORS} more" if len(errors) > _SHOWN_ERRORS else ""
        raise CorpusError(f"cannot read {len(errors)} input(s) of the corpus {path}; fix or remove "
                          f"them before training:\n  {shown}{more}")
    if not documents:
        raise CorpusError(f"the corpus {path} holds no documents (.txt/.md files or JSONL lines)")
    return documents

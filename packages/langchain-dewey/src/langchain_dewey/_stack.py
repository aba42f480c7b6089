"""Warnings that point at the user's line, however deep inside LangChain and pydantic they start."""

from __future__ import annotations

import sys

_INTERNAL = ("pydantic", "langchain_core", "langchain_text_splitters", "langchain_dewey")


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning raised by the calling function point at the
    first frame outside pydantic, LangChain and this package: the user's own line."""
    level, frame = 1, sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(_INTERNAL):
        level, frame = level + 1, frame.f_back
    return level + 1

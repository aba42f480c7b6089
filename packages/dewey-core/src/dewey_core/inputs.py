"""Validation of caller input: clear errors that name the offending item, nothing dropped."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any


def check_texts(texts: Any, what: str = "texts") -> list[str]:
    """``texts`` must be a list or tuple of str; a bare string is refused (not split in chars)."""
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"{what} must be a list of str, got {type(texts).__name__}"
                        + (" (wrap a single text in a list)" if isinstance(texts, str) else ""))
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{what}[{i}] must be str, got {type(t).__name__}")
        at = lone_surrogate(t)
        if at is not None:  # e.g. a string sliced through an emoji's UTF-16 pair
            raise ValueError(f"{what}[{i}] holds a lone surrogate ({t[at]!r} at character {at}), which "
                             "is not text; fix its source or decode it with errors='replace'")
    return list(texts)


def lone_surrogate(text: str) -> int | None:
    """The index of the first character of ``text`` that UTF-8 cannot encode (a lone surrogate,
    or an undecodable byte of a file name), or ``None``."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def resolve_prompt(prompt: str | None, prompt_name: str | None, prompts: Mapping[str, str],
                   default: str | None) -> str | None:
    """The prompt a call asked for: ``prompt``, the named one of ``prompts``, else ``default``."""
    if prompt is not None and prompt_name is not None:
        raise ValueError("give prompt or prompt_name, not both")
    if prompt_name is not None:
        if prompt_name not in prompts:
            raise ValueError(f"unknown prompt_name {prompt_name!r}; this model has {sorted(prompts)}")
        return prompts[prompt_name]
    if prompt is not None and not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    return default if prompt is None else prompt


def check_int(value: Any, name: str, *, optional: bool = False) -> int | None:
    """An integer setting as a plain ``int`` (numpy integers too; bools refused); ``None``
    passes when ``optional``. Ranges are the caller's to check."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int{' or None' if optional else ''}, "
                        f"got {type(value).__name__} {value!r}")
    return int(value)


def check_dim(dim: Any, available: Sequence[int]) -> int | None:
    """``dim`` is ``None`` or a positive int no larger than the biggest available output."""
    dim = check_int(dim, "dim", optional=True)
    if dim is None:
        return None
    if not 0 < dim <= max(available):
        raise ValueError(f"dim={dim} is out of range: this model's embeddings have at most "
                         f"{max(available)} dimensions")
    return dim


def check_spans(spans: Any, texts: list[str], *, allow_overlap: bool) -> list[list[tuple[int, int]]]:
    """One list of ``(start, end)`` character spans per text, each within its text.

    Unless ``allow_overlap``, spans of a document must be sorted and must not overlap.
    """
    if not isinstance(spans, (list, tuple)):
        raise TypeError(f"spans must be a list (one list of (start, end) per text), "
                        f"got {type(spans).__name__}")
    if len(spans) != len(texts):
        raise ValueError(f"spans has {len(spans)} entries for {len(texts)} texts; "
                         "give one list of spans per text")
    checked = []
    for d, (doc_spans, text) in enumerate(zip(spans, texts, strict=True)):
        if not isinstance(doc_spans, (list, tuple)):
            raise TypeError(f"spans[{d}] must be a list of (start, end), "
                            f"got {type(doc_spans).__name__}")
        out: list[tuple[int, int]] = []
        for j, span in enumerate(doc_spans):
            where = f"document {d}, span {j} {span!r}"
            if (not isinstance(span, (list, tuple)) or len(span) != 2
                    or not all(isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in span)):
                raise TypeError(f"{where}: a span must be a pair of int (start, end)")
            start, end = int(span[0]), int(span[1])  # numpy integers too (e.g. from np.cumsum)
            if start < 0 or end > len(text):
                raise ValueError(f"{where}: out of range for a text of {len(text)} characters")
            if end <= start:
                raise ValueError(f"{where}: empty span (end <= start)")
            if out and not allow_overlap:
                prev = out[-1]
                if start < prev[0]:
                    raise ValueError(f"{where}: spans are not sorted (previous starts at "
                                     f"{prev[0]}); sort them or pass allow_overlap=True")
                if start < prev[1]:
                    raise ValueError(f"{where}: overlaps the previous span {prev}; pass "
                                     "allow_overlap=True if overlapping chunks are intended")
            out.append((start, end))
        checked.append(out)
    return checked

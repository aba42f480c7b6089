"""Tokenise once, with character offsets, splitting prompt tokens from content tokens.

Every code path (plain encoding and late chunking) starts from a :class:`TokenizedText`, so a
text is tokenised exactly once. The prompt and the text are tokenised together, as
sentence-transformers does, and a token belongs to the prompt when it ends inside it: a token
that straddles the cut (BPE merges a prompt's trailing space into the text's first word) is
content, so no word of the text is lost.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

_HUGE = 10**12


@dataclass(frozen=True)
class TokenizedText:
    """Content token ids of one text with their character offsets into that text."""

    prompt_ids: tuple[int, ...]
    ids: tuple[int, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def token_range(self, start: int, end: int) -> tuple[int, int]:
        """Token indices ``[first, last)`` of the tokens that start inside chars ``[start, end)``.

        When no token starts there (a span inside one token, or only whitespace), the tokens that
        overlap the span are used, and failing that the nearest token, so every non-empty span of
        a non-empty text gets at least one token.
        """
        first = bisect_left(self.starts, start)
        last = bisect_left(self.starts, end)
        if last > first:
            return first, last
        overlapping = [i for i in range(max(first - 1, 0), min(last + 1, len(self.ids)))
                       if self.starts[i] < end and self.ends[i] > start]
        if overlapping:
            return overlapping[0], overlapping[-1] + 1
        nearest = min(first, len(self.ids) - 1)
        return nearest, nearest + 1


class TextTokenizer:
    """Wraps a fast Hugging Face tokenizer: special tokens, prompts and offsets."""

    def __init__(self, tokenizer) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError(
                f"{type(tokenizer).__name__} is not a fast tokenizer; character offsets (needed "
                "for chunk spans) require a tokenizer.json"
            )
        self.hf = tokenizer
        # Long documents are windowed by us, never truncated by the tokenizer.
        tokenizer.model_max_length = _HUGE
        self.prefix_ids, self.suffix_ids = self._special_tokens()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def _special_tokens(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        probe = "hello"
        with_special = self.hf(probe, add_special_tokens=True)["input_ids"]
        plain = self.hf(probe, add_special_tokens=False)["input_ids"]
        for i in range(len(with_special) - len(plain) + 1):
            if with_special[i : i + len(plain)] == plain:
                return tuple(with_special[:i]), tuple(with_special[i + len(plain) :])
        raise ValueError("cannot locate the special tokens this tokenizer adds")

    @property
    def num_special(self) -> int:
        return len(self.prefix_ids) + len(self.suffix_ids)

    def tokenize(self, texts: Sequence[str], prompt: str = "") -> list[TokenizedText]:
        """Tokenise ``prompt + text`` for each text; offsets are relative to ``text``."""
        if not texts:
            return []
        encoded = self.hf(
            [prompt + t for t in texts],
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        cut = len(prompt)
        out = []
        for ids, offsets in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True):
            n_prompt = 0
            if cut:
                while n_prompt < len(ids) and offsets[n_prompt][1] <= cut:
                    n_prompt += 1
            out.append(
                TokenizedText(
                    prompt_ids=tuple(ids[:n_prompt]),
                    ids=tuple(ids[n_prompt:]),
                    starts=tuple(max(s - cut, 0) for s, _ in offsets[n_prompt:]),
                    ends=tuple(max(e - cut, 0) for _, e in offsets[n_prompt:]),
                )
            )
        return out

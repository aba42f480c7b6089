"""Tokenise once, with character offsets, splitting prompt tokens from content tokens.

Every code path (plain encoding and late chunking) starts from a :class:`TokenizedText`, so a
text is tokenised exactly once. The prompt and the text are tokenised together, as
sentence-transformers does, and a token belongs to the prompt when it ends inside it: a token
that straddles the cut (BPE merges a prompt's trailing space into the text's first word) is
content, so no word of the text is lost.

Each token also has an *anchor*: the first non-space character it carries. Byte-level BPE
tokenizers (ModernBERT, Qwen2, GPT-2, RoBERTa without offset trimming) fold a word's leading
space into the word's token, so ``" Rust"`` starts at the space; chunk spans from splitters that
strip whitespace start one character later. Tokens are assigned to spans by their anchor, so a
word always belongs to the span that holds its first letter, whatever the tokenizer.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

_HUGE = 10**12


@dataclass(frozen=True)
class TokenizedText:
    """Content token ids of one text with their character offsets into that text (``None``
    when tokenised with ``offsets=False``: ids only)."""

    prompt_ids: tuple[int, ...]
    ids: tuple[int, ...]
    starts: tuple[int, ...] | None
    ends: tuple[int, ...] | None
    anchors: tuple[int, ...] | None = None
    """First non-space character of each token (its start for whitespace-only tokens);
    ``None`` means the same as ``starts`` (tokenizers that never fold spaces into tokens)."""

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def positions(self) -> tuple[int, ...]:
        """Where each token's text begins: its anchor."""
        if self.starts is None:
            raise ValueError("this text was tokenised without character offsets "
                             "(TextTokenizer.tokenize(..., offsets=False)); spans need them")
        return self.starts if self.anchors is None else self.anchors

    def head(self, n: int) -> TokenizedText:
        """The first ``n`` content tokens (truncation)."""
        if n >= len(self):
            return self

        def cut(values: tuple[int, ...] | None) -> tuple[int, ...] | None:
            return None if values is None else values[:n]

        return TokenizedText(self.prompt_ids, self.ids[:n], cut(self.starts), cut(self.ends),
                             cut(self.anchors))

    def token_range(self, start: int, end: int) -> tuple[int, int]:
        """Token indices ``[first, last)`` of the tokens anchored inside chars ``[start, end)``.

        A token is anchored at its first non-space character, so ``" Rust"`` belongs to a span
        that starts at ``R``. When no token is anchored there (a span inside one token, or only
        whitespace), the tokens that overlap the span are used, and failing that the nearest
        token, so every non-empty span of a non-empty text gets at least one token.
        """
        positions = self.positions
        first = bisect_left(positions, start)
        last = bisect_left(positions, end)
        if last > first:
            return first, last
        overlapping = [i for i in range(max(first - 1, 0), min(last + 1, len(self.ids)))
                       if self.starts[i] < end and self.ends[i] > start]
        if overlapping:
            return overlapping[0], overlapping[-1] + 1
        nearest = min(first, len(self.ids) - 1)
        return nearest, nearest + 1


class TextTokenizer:
    """Wraps a fast Hugging Face tokenizer: special tokens, prompts and offsets.

    ``add_eos_token`` (read from a checkpoint's ``tokenizer_config.json`` by the loaders)
    appends the end-of-text token to every sequence, as the authors' tokenizer did (Stella
    1.5B's custom Qwen2 tokenizer sets it; transformers 5 ignores the flag).
    """

    def __init__(self, tokenizer, *, add_eos_token: bool = False) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError(
                f"{type(tokenizer).__name__} is not a fast tokenizer; character offsets (needed "
                "for chunk spans) require a tokenizer.json"
            )
        self.hf = tokenizer
        # Long documents are windowed by us, never truncated by the tokenizer.
        tokenizer.model_max_length = _HUGE
        self.prefix_ids, self.suffix_ids = self._special_tokens()
        eos = tokenizer.eos_token_id
        if add_eos_token and eos is not None and self.suffix_ids[-1:] != (eos,):
            self.suffix_ids = (*self.suffix_ids, eos)
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

    def tokenize(self, texts: Sequence[str], prompt: str = "", *,
                 offsets: bool = True) -> list[TokenizedText]:
        """Tokenise ``prompt + text`` for each text; offsets are relative to ``text``.
        ``offsets=False`` keeps only the ids and skips the per-token offset work: whole-text
        encoding and token counts need no spans."""
        if not texts:
            return []
        cut = len(prompt)
        mapped = offsets or cut > 0  # a prompt is cut off by its tokens' offsets
        encoded = self.hf(
            [prompt + t for t in texts],
            add_special_tokens=False,
            return_offsets_mapping=mapped,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        mappings = encoded["offset_mapping"] if mapped else [None] * len(texts)
        out = []
        for text, ids, mapping in zip(texts, encoded["input_ids"], mappings, strict=True):
            n_prompt = 0
            if cut:
                while n_prompt < len(ids) and mapping[n_prompt][1] <= cut:
                    n_prompt += 1
            starts = ends = token_anchors = None
            if offsets:
                starts, ends = _relative(mapping[n_prompt:], cut)
                token_anchors = anchors(text, starts, ends)
            prompt_ids = tuple(ids[:n_prompt])
            if not ids and not self.num_special:
                # A tokenizer that adds no special tokens (Qwen2) would give an empty sequence:
                # the end-of-text token stands in (belonging to no chunk), so every text gets a
                # vector.
                prompt_ids = (self.filler_id,)
            out.append(TokenizedText(prompt_ids, tuple(ids[n_prompt:]), starts, ends, token_anchors))
        return out

    @property
    def filler_id(self) -> int:
        eos = self.hf.eos_token_id
        return eos if eos is not None else self.pad_id


def _relative(mapping: Sequence[tuple[int, int]], cut: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Token starts and ends relative to the text after a ``cut``-character prompt."""
    if not mapping:
        return (), ()
    starts, ends = zip(*mapping, strict=True)
    if cut:  # a token straddling the cut starts at the text's first character
        starts = tuple(s - cut if s > cut else 0 for s in starts)
        ends = tuple(e - cut if e > cut else 0 for e in ends)
    return starts, ends


def anchors(text: str, starts: Sequence[int], ends: Sequence[int]) -> tuple[int, ...] | None:
    """First non-space character of each token; ``None`` when every token starts on one."""
    out = list(starts)
    moved = False
    for i, (s, e) in enumerate(zip(starts, ends, strict=True)):
        a = s
        while a < e and text[a].isspace():
            a += 1
        if s < a < e:
            out[i] = a
            moved = True
    return tuple(out) if moved else None

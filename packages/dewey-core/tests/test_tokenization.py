"""Prompt/content split and chunk edges on a byte-level BPE tokenizer (Qwen2-style, tiny Stella)."""

from __future__ import annotations

import pytest

from dewey_core import DeweyEncoder
from dewey_core.chunking import chunk_token_ranges
from dewey_core.testing import tiny_stella


@pytest.fixture(scope="module")
def stella(tmp_path_factory) -> DeweyEncoder:
    return DeweyEncoder.from_pretrained(tiny_stella(tmp_path_factory.mktemp("stella")), device="cpu")


def test_prompt_ending_in_a_space_keeps_the_first_word(stella):
    tokenizer = stella.model.tokenizer
    text = "is saffron a spice?"
    (tok,) = tokenizer.tokenize([text], prompt="Query: What ")
    # Every character of the text is covered by content tokens, the first word included.
    assert tok.starts[0] == 0
    assert text[: tok.ends[0]].strip() != ""
    joint = tokenizer.hf("Query: What " + text, add_special_tokens=False)["input_ids"]
    assert list(tok.prompt_ids) + list(tok.ids) == joint


def test_chunks_never_split_the_byte_tokens_of_one_character(stella):
    text = "中文 é 中文 (x) 😀 emoji 文字 " * 6
    (tok,) = stella.model.tokenizer.tokenize([text])
    for mode in ("boundaries", "fixed"):
        for _first, last in chunk_token_ranges(text, tok, 5, 0, mode):
            assert last == len(tok) or tok.starts[last] != tok.starts[last - 1]


@pytest.mark.parametrize("family", ["stella", "minilm"])
@pytest.mark.parametrize("prompt", ["", "Query: What ", "query: "])
def test_ids_only_tokenising_gives_the_same_ids_and_prompt_cut(family, prompt, stella, minilm, pydoc_topics):
    tokenizer = (stella if family == "stella" else minilm).model.tokenizer
    texts = ["is saffron a spice?", "", " leading space", "中文 é 😀", pydoc_topics["for"][:800]]
    full = tokenizer.tokenize(texts, prompt)
    ids_only = tokenizer.tokenize(texts, prompt, offsets=False)
    assert [(t.prompt_ids, t.ids) for t in ids_only] == [(t.prompt_ids, t.ids) for t in full]
    assert all(t.starts is None and t.ends is None and t.anchors is None for t in ids_only)
    assert ids_only[4].head(5).ids == full[4].ids[:5] and ids_only[4].head(5).starts is None
    with pytest.raises(ValueError, match="tokenised without character offsets"):
        ids_only[4].token_range(0, 10)
    for mode in ("boundaries", "fixed"):
        with pytest.raises(ValueError, match="chunking needs character offsets"):
            chunk_token_ranges(texts[4], ids_only[4], 16, 0, mode)


def test_offsets_after_a_prompt_are_relative_to_the_text(minilm):
    text = "Exceptions are caught with try."
    (plain,) = minilm.model.tokenizer.tokenize([text])
    (prompted,) = minilm.model.tokenizer.tokenize([text], "query: ")
    assert prompted.ids == plain.ids and prompted.prompt_ids
    assert (prompted.starts, prompted.ends) == (plain.starts, plain.ends)
    words = [text[s:e] for s, e in zip(plain.starts, plain.ends, strict=True)]
    assert words[:3] == ["Exceptions", "are", "caught"]

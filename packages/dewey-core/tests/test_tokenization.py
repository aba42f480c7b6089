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

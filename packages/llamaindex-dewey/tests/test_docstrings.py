"""The runnable examples in the public docstrings work (on the offline MiniLM model)."""

from __future__ import annotations

import doctest

import pytest

import llamaindex_dewey
from llamaindex_dewey import embeddings, node_parser, retriever


@pytest.mark.parametrize("module", [llamaindex_dewey, embeddings, node_parser, retriever],
                         ids=lambda m: m.__name__)
def test_docstring_examples_run(module, minilm):  # minilm: the model is loaded once for all
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

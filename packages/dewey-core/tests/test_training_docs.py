"""The training package's docstring examples run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["dewey_core.training", "dewey_core.training.config", "dewey_core.training.losses",
           "dewey_core.training.heldout", "dewey_core.training.trainer"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

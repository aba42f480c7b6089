"""The documentation runs: every example script, and the README's offline dewey-core snippet
prints what the README says it prints."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
# Each example asks questions and prints ranked hits with a score such as "0.651".
SCORED_HIT = re.compile(r"\b0\.\d{3}\b")


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_offline_and_answers(script):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HAYSTACK_TELEMETRY_ENABLED": "False"}
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    questions = [line for line in done.stdout.splitlines() if line.lstrip().startswith("Q: ")]
    assert len(questions) >= 3, done.stdout[-2000:]
    assert len(SCORED_HIT.findall(done.stdout)) >= len(questions)


def test_examples_cover_every_framework():
    assert {p.name for p in EXAMPLES} >= {"quickstart.py", "langchain_quickstart.py",
                                          "llamaindex_quickstart.py", "haystack_quickstart.py"}


def _readme_block(heading: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(heading, 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_core_snippet_prints_what_it_claims(minilm):  # minilm: model loaded once
    code = _readme_block("## dewey-core in a few lines")
    claimed = [line.lstrip("# ") for line in code.splitlines() if line.startswith("# ")]
    assert claimed, "the snippet documents its output in a trailing comment"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue().splitlines() == claimed

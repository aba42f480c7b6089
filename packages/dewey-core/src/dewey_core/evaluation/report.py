"""Readable reports of measured :class:`~dewey_core.evaluation.runner.Score` rows: a Markdown
table per task and a PNG plot per task of score against document length, one line per method.

Example:
    >>> from dewey_core.evaluation.report import markdown_report
    >>> from dewey_core.evaluation.runner import Score
    >>> print(markdown_report([Score("passkey", 256, 250.0, "late", "acc@1", 0.9, 20)]))
    ### passkey
    <BLANKLINE>
    | method | metric | 250 tokens |
    | --- | --- | --- |
    | late | acc@1 | 0.900 |
    <BLANKLINE>
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dewey_core.evaluation.runner import (
    ACCURACY_AT_1,
    METHOD_ORDER,
    NDCG_AT_10,
    RECALL_AT_1,
    WINDOWS,
    Score,
)

PLOTTED_METRICS = (RECALL_AT_1, NDCG_AT_10, ACCURACY_AT_1)


def _tasks(scores: Sequence[Score]) -> list[str]:
    return list(dict.fromkeys(s.task for s in scores))


def _method_key(method: str) -> int:
    # Methods outside METHOD_ORDER keep the order they were measured in (sorts are stable).
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def markdown_report(scores: Sequence[Score]) -> str:
    """One table per task: a row per (method, metric), a column per document length."""
    out = []
    for task in _tasks(scores):
        rows = [s for s in scores if s.task == task]
        lengths = sorted({s.length for s in rows})
        tokens = {n: round(sum(s.tokens for s in rows if s.length == n)
                           / sum(1 for s in rows if s.length == n)) for n in lengths}
        out += [f"### {task}", "", "| method | metric | " + " | ".join(f"{tokens[n]} tokens" for n in lengths)
                + " |", "| --- | --- | " + " | ".join("---" for _ in lengths) + " |"]
        keys = dict.fromkeys((s.method, s.metric) for s in sorted(rows, key=lambda s: _method_key(s.method)))
        for method, metric in keys:
            cells = {s.length: s for s in rows if (s.method, s.metric) == (method, metric)}
            values = [f"{cells[n].value:.3f}" if n in cells else "" for n in lengths]
            out.append(f"| {method} | {metric} | " + " | ".join(values) + " |")
        out.append("")
    return "\n".join(out)


def plot_scores(scores: Sequence[Score], out_dir: str | Path, *, model: str = "") -> list[Path]:
    """Write ``<task>.png`` per task: the task's headline metric against measured document
    length (tokens, log scale), one line per method. Returns the files written. The windows
    task compares settings at one length, so it has a table and no plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for task in _tasks(scores):
        if task == WINDOWS:
            continue
        rows = [s for s in scores if s.task == task]
        metric = next(m for m in (*PLOTTED_METRICS, rows[0].metric) if any(s.metric == m for s in rows))
        rows = sorted((s for s in rows if s.metric == metric), key=lambda s: s.tokens)
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
        for method in sorted(dict.fromkeys(s.method for s in rows), key=_method_key):
            line = [s for s in rows if s.method == method]
            ax.plot([s.tokens for s in line], [s.value for s in line], marker="o", label=method)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("document length (tokens)")
        ax.set_ylabel(metric)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{task}: {metric} vs document length" + (f" ({model})" if model else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{task}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written

"""The training report: ``report.md`` (settings, corpus, evaluation before and after),
``report.json`` (every number) and ``loss.png`` (the loss curve)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from dewey_core.evaluation.runner import Score

#: Steps averaged for the smoothed loss curve.
SMOOTHING = 25


def moving_average(values: Sequence[float], window: int = SMOOTHING) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_loss(history: Sequence[dict], path: Path, title: str) -> Path:
    """Loss per step (raw and smoothed) and each term's smoothed curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ax.plot(steps, [h["loss"] for h in history], color="0.8", linewidth=0.8, label="loss (per step)")
    ax.plot(steps, moving_average([h["loss"] for h in history]), color="black", linewidth=1.8,
            label=f"loss ({SMOOTHING}-step mean)")
    terms = dict.fromkeys(k for h in history for k in h if k not in ("step", "loss", "lr"))
    for term in terms:  # a term absent from some steps (global: whole documents only) is drawn where it is
        present = [h for h in history if term in h]
        ax.plot([h["step"] for h in present], moving_average([h[term] for h in present]),
                linewidth=1.2, label=term)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _change(before: float | None, after: float | None) -> str:
    return "" if before is None or after is None else f"{after - before:+.3f}"


def held_out_table(before: dict[str, float], after: dict[str, float]) -> list[str]:
    rows = ["| measure | before | after | change |", "| --- | --- | --- | --- |"]
    for key in dict.fromkeys([*before, *after]):
        rows.append(f"| {key} | {_fmt(before.get(key))} | {_fmt(after.get(key))} | "
                    f"{_change(before.get(key), after.get(key))} |")
    return rows


def suite_table(before: Sequence[Score], after: Sequence[Score]) -> list[str]:
    """One row per (task, length, method, metric) measured before and after."""
    key = lambda s: (s.task, s.length, s.method, s.metric)  # noqa: E731
    after_by = {key(s): s for s in after}
    rows = ["| task | tokens | method | metric | before | after | change |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for s in before:
        a = after_by.get(key(s))
        rows.append(f"| {s.task} | {round(s.tokens)} | {s.method} | {s.metric} | {s.value:.3f} | "
                    f"{_fmt(a.value if a else None)} | {_change(s.value, a.value if a else None)} |")
    return rows


def summary_table(before: Sequence[Score], after: Sequence[Score]) -> list[str]:
    """Passkey and needle pooled over their lengths (query-weighted: each length alone is 20
    queries, too few to read a change from); the contextual set per length."""
    def pooled(scores: Sequence[Score]) -> dict[tuple, float]:
        totals: dict[tuple, list[float]] = {}
        for s in scores:
            length = str(round(s.tokens)) if s.task == "contextual" else "all"
            t = totals.setdefault((s.task, length, s.method, s.metric), [0.0, 0])
            t[0] += s.value * s.queries
            t[1] += s.queries
        return {k: v / n for k, (v, n) in totals.items() if n}

    b, a = pooled(before), pooled(after)
    rows = ["| task | tokens | method | metric | before | after | change |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for k, v in b.items():
        rows.append(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {v:.3f} | {_fmt(a.get(k))} | "
                    f"{_change(v, a.get(k))} |")
    return rows


def write_report(folder: Path, report: dict) -> None:
    """``report.md`` and ``report.json`` from the run's report dict (see ``trainer.train``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    config, corpus = report["config"], report["corpus"]
    lines = [f"# Training report: {report['objective']}", "",
             f"Student `{config['model']}`, teacher `{report['teacher']}`; {report['steps']} steps in "
             f"{report['seconds']:.0f} s ({report['seconds'] / max(report['steps'], 1):.2f} s/step) "
             f"on {report['device']}.", "",
             f"Corpus `{corpus['source']}`: {corpus['train_documents']} documents "
             f"({corpus['train_tokens']} tokens) trained on, {corpus['held_out_documents']} held out "
             f"({corpus['held_out_tokens']} tokens), never trained on: "
             + (", ".join(f"`{d}`" for d in corpus["held_out_ids"]) or "none") + ".", "",
             "## Held-out evaluation", ""]
    if report["held_out"]["before"]:
        lines += held_out_table(report["held_out"]["before"], report["held_out"]["after"])
    else:
        lines.append("No documents were held out (held_out_fraction = 0).")
    if report.get("suite"):
        before = [Score(**s) for s in report["suite"]["before"]]
        after = [Score(**s) for s in report["suite"]["after"]]
        lines += ["", f"## The project's evaluation (seed {config['suite_seed']})", "",
                  *summary_table(before, after), "", "Per length:", "", *suite_table(before, after)]
    alone = report.get("trained_weights_alone")
    if alone and (alone["held_out"] or alone.get("suite")):
        lines += ["", "## The trained weights alone", "",
                  f"The folder keeps the starting weights in `{report['plain_model']}/` (named in "
                  "`dewey.json`): `DeweyEncoder` embeds queries and whole texts with them, in the space "
                  "the late-chunked vectors were trained into, and late-chunks with the trained weights. "
                  "That pairing is \"after\" above. Below, the trained weights alone, as "
                  "sentence-transformers loads the folder (or `DeweyEncoder.from_pretrained(..., "
                  "plain_model=False)`).", ""]
        if alone["held_out"]:
            lines += held_out_table(report["held_out"]["before"], alone["held_out"])
        if alone.get("suite"):
            lines += ["", *summary_table([Score(**s) for s in report["suite"]["before"]],
                                         [Score(**s) for s in alone["suite"]])]
    lines += ["", "## Loss", "", "![loss](loss.png)", "", "## Settings", "",
              "| setting | value |", "| --- | --- |",
              *(f"| {k} | {v} |" for k, v in config.items()), ""]
    (folder / "report.md").write_text("\n".join(lines), encoding="utf-8")

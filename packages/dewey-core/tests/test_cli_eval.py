"""``dewey eval`` on MiniLM with small sizes: Markdown, JSON and real PNG plots."""

from __future__ import annotations

import json
import re

import matplotlib.image
import pytest

from dewey_core.cli import main


@pytest.fixture(scope="module")
def report(minilm_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    code = main(["eval", "--out", str(out), "--model", minilm_path, "--device", "cpu",
                 "--contextual-lengths", "150,400", "--passkey-lengths", "256,512",
                 "--needle-lengths", "256", "--documents", "4", "--contextual-documents", "4",
                 "--window-length", "600", "--window-settings", "0:0,8:4"])
    return code, out


def test_writes_markdown_json_and_plots(report):
    code, out = report
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    tasks = {s["task"] for s in results["scores"]}
    assert tasks == {"contextual", "passkey", "needle", "windows"}
    markdown = (out / "results.md").read_text()
    # Every measured number is in its task's table, at its row and length column.
    for s in results["scores"]:
        section = markdown.split(f"### {s['task']}\n")[1].split("### ")[0]
        _header, *rows = [line for line in section.splitlines() if line.startswith("|")]
        lengths = sorted({x["length"] for x in results["scores"] if x["task"] == s["task"]})
        row = next(r for r in rows if r.startswith(f"| {s['method']} | {s['metric']} |"))
        assert row.split(" | ")[2 + lengths.index(s["length"])].strip(" |") == f"{s['value']:.3f}"
    assert sorted({s["length"] for s in results["scores"] if s["task"] == "passkey"}) == [256, 512]
    assert [m for m in dict.fromkeys(s["method"] for s in results["scores"] if s["task"] == "windows")] \
        == ["context 0, overlap 0", "context 8, overlap 4", "context 31, overlap 15 (default)"]
    assert not (out / "windows.png").exists()  # settings at one length: a table, no plot
    for task in tasks - {"windows"}:
        png = out / f"{task}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width, _ = matplotlib.image.imread(png).shape
        assert width > 300 and height > 200
        assert f"]({task}.png)" in markdown


def test_plots_differ_by_task(report):
    _, out = report
    images = {t: (out / f"{t}.png").read_bytes() for t in ("contextual", "passkey", "needle")}
    assert len(set(images.values())) == 3


def test_task_subset_and_bad_lengths(minilm_path, tmp_path, capsys):
    assert main(["eval", "--out", str(tmp_path), "--model", minilm_path, "--tasks", "passkey",
                 "--passkey-lengths", "256", "--documents", "3"]) == 0
    assert {s["task"] for s in json.loads((tmp_path / "results.json").read_text())["scores"]} == {"passkey"}
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["passkey.png"]
    with pytest.raises(SystemExit):
        main(["eval", "--out", str(tmp_path), "--passkey-lengths", "256,lots"])
    assert re.search(r"comma-separated token counts", capsys.readouterr().err)
    with pytest.raises(SystemExit):
        main(["eval", "--out", str(tmp_path), "--window-settings", "32"])
    assert re.search(r"CONTEXT:OVERLAP token pairs", capsys.readouterr().err)
    # A pair that fits no window fails at once, before any task runs.
    assert main(["eval", "--out", str(tmp_path / "w"), "--model", minilm_path,
                 "--window-settings", "300:0"]) == 2
    err = capsys.readouterr().err
    assert "context_tokens + window_overlap (300 + 0)" in err and "contextual set" not in err

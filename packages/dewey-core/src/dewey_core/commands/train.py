"""``dewey train CORPUS --out DIR``: teach a model late chunking on a corpus (chunk alignment),
or distil a teacher into it, and save it as a sentence-transformers folder.

CORPUS is a folder of ``.txt``/``.md`` files or a JSONL file (as for ``dewey embed``); every
file must be readable. A share of its documents (``--held-out``) is kept for evaluation and
never trained on. DIR receives the trained model and ``training/report.md`` (settings, held-out
evaluation before and after, and with ``--suite`` the project's contextual, passkey and needle
evaluation), ``report.json`` and ``loss.png``. An interrupted run resumes from its last
checkpoint when the same command is run again.

Example:
    dewey train notes/ --out minilm-notes --model sentence-transformers/all-MiniLM-L6-v2 --steps 600
    dewey train notes/ --out small --model small-model --teacher big-model --objective distillation
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dewey_core.training.config import DEFAULT_STUDENT, OBJECTIVES, TrainingConfig
from dewey_core.training.targets import CHUNK_CONTEXTS

_DEFAULTS = TrainingConfig()


def _ints(value: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None
    if not numbers:
        raise argparse.ArgumentTypeError(f"expected at least one integer, got {value!r}")
    return numbers


def _floats(value: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {value!r}") from None


def _joined(values) -> str:
    return ",".join(str(v) for v in values)


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help="train a model for late chunking (or distil a teacher into it)",
                              description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", type=Path, help="folder of .txt/.md files, or a .jsonl file")
    p.add_argument("--out", type=Path, required=True,
                   help="folder for the trained model and its report (resumed if it holds a run)")
    p.add_argument("--model", default=DEFAULT_STUDENT, help=f"the student (default {DEFAULT_STUDENT})")
    p.add_argument("--teacher", default=None,
                   help="the frozen teacher (default: the student's starting weights)")
    p.add_argument("--objective", choices=OBJECTIVES, default=_DEFAULTS.objective,
                   help=f"default {_DEFAULTS.objective}")
    p.add_argument("--steps", type=int, default=_DEFAULTS.steps, help=f"default {_DEFAULTS.steps}")
    p.add_argument("--chunk-size", type=_ints, default=_DEFAULTS.chunk_sizes, dest="chunk_sizes",
                   help="chunk sizes in tokens, one drawn per document "
                        f"(default {_joined(_DEFAULTS.chunk_sizes)})")
    p.add_argument("--chunk-context", choices=CHUNK_CONTEXTS, default=_DEFAULTS.chunk_context,
                   help="what the teacher's chunk target is told: the document's opening, or none "
                        f"(default {_DEFAULTS.chunk_context})")
    p.add_argument("--opening-tokens", type=int, default=_DEFAULTS.opening_tokens,
                   help=f"longest opening written before a chunk (default {_DEFAULTS.opening_tokens})")
    p.add_argument("--global-weight", type=float, default=_DEFAULTS.global_weight,
                   help=f"weight of the global-vector term (default {_DEFAULTS.global_weight})")
    p.add_argument("--plain-weight", type=float, default=_DEFAULTS.plain_weight,
                   help="weight of the term that keeps each chunk embedded alone where the teacher "
                        f"puts it (default {_DEFAULTS.plain_weight}; 0 turns it off)")
    p.add_argument("--plain-similarity-weight", type=float, default=_DEFAULTS.plain_similarity_weight,
                   help="weight of the term that keeps how alike the chunks embedded alone are to one "
                        f"another (default {_DEFAULTS.plain_similarity_weight}: off)")
    p.add_argument("--crop-share", type=float, default=_DEFAULTS.crop_share,
                   help="share of draws that cut a document to an opening of its own, trained whole "
                        f"(default {_DEFAULTS.crop_share}; 0 turns it off)")
    p.add_argument("--learning-rate", type=float, default=_DEFAULTS.learning_rate,
                   help=f"default {_DEFAULTS.learning_rate}")
    p.add_argument("--freeze-layers", type=int, default=_DEFAULTS.freeze_layers,
                   help="keep the embeddings and the first N transformer layers at their starting "
                        "weights (default 0: train every layer)")
    p.add_argument("--windows-per-step", type=int, default=_DEFAULTS.windows_per_step,
                   help=f"model windows per chunk-alignment step (default {_DEFAULTS.windows_per_step})")
    p.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size,
                   help=f"passages per distillation step (default {_DEFAULTS.batch_size})")
    p.add_argument("--loss-weights", type=_floats, default=_DEFAULTS.loss_weights,
                   help="distillation: cosine,similarity,relative weights "
                        f"(default {_joined(_DEFAULTS.loss_weights)})")
    p.add_argument("--matryoshka-dims", type=_ints, default=(),
                   help="smaller output sizes to train by self-distillation, e.g. 256,128")
    p.add_argument("--drop-projection", action="store_true",
                   help="save the student at its own size (the projection to the teacher's size is "
                        "trained but not kept)")
    p.add_argument("--no-plain-model", action="store_false", dest="plain_model",
                   help="chunk alignment: save the trained weights alone, not beside the starting "
                        "weights that embed queries and whole texts")
    p.add_argument("--held-out", type=float, default=_DEFAULTS.held_out_fraction, dest="held_out_fraction",
                   help=f"share of documents held out for evaluation (default {_DEFAULTS.held_out_fraction})")
    p.add_argument("--suite", action="store_true",
                   help="also run the project's evaluation (contextual, passkey, needle) before and after")
    p.add_argument("--suite-seed", type=int, default=_DEFAULTS.suite_seed,
                   help="seed of the generated evaluation sets (default 0)")
    p.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    p.add_argument("--save-every", type=int, default=_DEFAULTS.save_every,
                   help=f"steps between checkpoints (default {_DEFAULTS.save_every})")
    p.add_argument("--max-length", type=int, default=None, help="tokens per student window")
    p.add_argument("--context-tokens", type=int, default=None,
                   help="opening tokens carried into later windows (default: min(window/8, 64))")
    p.add_argument("--window-overlap", type=int, default=None,
                   help="tokens before each later window's new ones (default: min(window/16, 32))")
    p.add_argument("--device", default=None, help="cuda, cpu, ... (default: CUDA when available)")
    p.add_argument("--dtype", default=None, help="the teacher's dtype (the student trains in float32)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from dewey_core.training import train

    try:
        config = TrainingConfig(
            model=args.model, teacher=args.teacher, objective=args.objective, steps=args.steps,
            learning_rate=args.learning_rate,
            freeze_layers=args.freeze_layers, chunk_sizes=args.chunk_sizes,
            chunk_context=args.chunk_context, opening_tokens=args.opening_tokens,
            global_weight=args.global_weight, plain_weight=args.plain_weight,
            plain_similarity_weight=args.plain_similarity_weight, crop_share=args.crop_share,
            windows_per_step=args.windows_per_step,
            batch_size=args.batch_size, loss_weights=args.loss_weights,
            matryoshka_dims=args.matryoshka_dims, keep_projection=not args.drop_projection,
            plain_model=args.plain_model,
            held_out_fraction=args.held_out_fraction, suite=args.suite, suite_seed=args.suite_seed,
            seed=args.seed, save_every=args.save_every, max_length=args.max_length,
            context_tokens=args.context_tokens, window_overlap=args.window_overlap,
            device=args.device, dtype=args.dtype).check()
        result = train(args.corpus, args.out, config, show_progress=not args.quiet)
    except (OSError, ValueError, TypeError) as exc:
        print(f"dewey train: error: {exc}", file=sys.stderr)
        return 2
    print((result.model_dir / "training" / "report.md").read_text(encoding="utf-8"))
    print(f"dewey train: wrote the model to {result.model_dir} and its report to "
          f"{result.model_dir / 'training'}", file=sys.stderr)
    return 0

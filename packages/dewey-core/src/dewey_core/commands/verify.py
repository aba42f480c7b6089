"""``dewey verify-checkpoint PATH``: load a downloaded checkpoint natively and check it.

Reports the family, how the checkpoint's keys were mapped (every key must be used or known to
be unused, otherwise loading is refused with the keys named), the output sizes, the norms of
the vectors before normalisation for each head, and a few sanity similarities: each query
must score its relevant passage above the others. With real weights every check should pass;
random weights (e.g. ``dewey_core.testing`` checkpoints) load but fail the sanity checks.

Exit status: 0 when everything passed, 1 when a sanity check failed, 2 when the checkpoint
cannot be loaded.

Example:
    dewey verify-checkpoint ~/models/dewey_en_beta --device cuda
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

SANITY = [
    ("What is the capital of France?",
     ["Paris is the capital and largest city of France.",
      "Photosynthesis converts light energy into chemical energy in plants.",
      "The Python language uses indentation to delimit blocks."]),
    ("How do plants make food from sunlight?",
     ["Paris is the capital and largest city of France.",
      "Photosynthesis converts light energy into chemical energy in plants.",
      "The Python language uses indentation to delimit blocks."]),
    ("Which programming language uses significant whitespace?",
     ["Paris is the capital and largest city of France.",
      "Photosynthesis converts light energy into chemical energy in plants.",
      "The Python language uses indentation to delimit blocks."]),
]
#: Index of the relevant passage for each SANITY query.
RELEVANT = [0, 1, 2]


def add_parser(subparsers: Any, name: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help="load a checkpoint natively and report key "
                                   "coverage, dimensions, norms and sanity similarities",
                                   description=__doc__.split("\n\n")[1])
    parser.add_argument("path", help="checkpoint directory (or Hugging Face id in the local cache)")
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: CUDA when available)")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16, ... (default: per device)")
    parser.add_argument("--pooling", default=None, help="dewey_en_beta pooling: cls, mean, cls_add_mean")
    return parser


def run(args: argparse.Namespace) -> int:
    from dewey_core import DeweyEncoder
    from dewey_core.loading import resolve_model_dir
    from dewey_core.models.checkpoint import read_keys

    options = {"pooling": args.pooling} if args.pooling else {}
    try:
        path = resolve_model_dir(args.path, allow_download=False)
        keys = read_keys(path)
        enc = DeweyEncoder.from_pretrained(path, device=args.device, dtype=args.dtype, **options)
    except Exception as exc:  # report any loading failure, named, and stop
        print(f"FAILED to load {args.path}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    report = verify(enc, keys)
    print(format_report(report))
    return 0 if report["sanity_passed"] else 1


def verify(enc: Any, keys: list[str]) -> dict[str, Any]:
    """Checks on a loaded encoder; ``keys`` are the checkpoint's tensor names."""
    model = enc.model
    ignored = list(getattr(model, "ignored_keys", []))
    groups: dict[str, int] = {}
    for k in keys:
        root = k.split(".")[0]
        groups[root] = groups.get(root, 0) + 1
    report: dict[str, Any] = {
        "path": str(model.path), "family": model.family, "device": str(model.device),
        "dtype": str(model.dtype).removeprefix("torch."), "keys": len(keys),
        "key_groups": dict(sorted(groups.items())), "ignored_keys": ignored,
        "hidden_size": model.hidden_size, "dimension": model.dimension,
        "head_dims": list(model.head_dims), "max_length": model.max_length,
        "pooling": getattr(model, "pooling_name", model.pooling), "packing": model.packing,
        "query_prompt": model.prompts.query, "document_prompt": model.prompts.document,
    }
    texts = [q for q, _ in SANITY] + SANITY[0][1]
    # A folder that keeps its starting weights (dewey train) embeds texts with those: check the
    # checkpoint's own weights alone as well.
    report["plain_model"] = None if enc.plain_model is None else str(enc.plain_model.path)
    checked = [("", enc)] if enc.plain_model is None else \
        [("trained", type(enc)(model, max_length=enc.max_length)), ("plain", enc)]
    report["norms"] = _raw_norms(checked[0][1], texts)
    report["non_finite"] = any(not np.isfinite(e.encode_documents(texts)).all() for _, e in checked)
    rows = []
    for weights, e in checked:
        for dim in sorted({*model.head_dims, model.dimension}):
            for (query, passages), relevant in zip(SANITY, RELEVANT, strict=True):
                q = e.encode_queries([query], dim)[0]
                scores = e.encode_documents(passages, dim) @ q
                rows.append({"weights": weights, "dim": dim, "query": query,
                             "scores": [round(float(s), 4) for s in scores],
                             "passed": int(np.argmax(scores)) == relevant})
    report["sanity"] = rows
    report["sanity_passed"] = all(r["passed"] for r in rows) and not report["non_finite"]
    if getattr(enc, "supports_images", False):
        from PIL import Image

        images = [Image.new("RGB", (64, 64), c) for c in ("red", "blue")]
        vectors = enc.encode_images(images)
        report["image_embedding_shape"] = list(vectors.shape)
        report["image_text_similarity"] = [round(float(s), 4) for s in
                                           vectors @ enc.encode_queries(["a red image"])[0]]
    return report


def _raw_norms(enc: Any, texts: list[str]) -> dict[int, float]:
    """Mean L2 norm, per output size, of the vectors before normalisation."""
    dims = enc.model.head_dims or (enc.dimension,)
    return {d: round(float(np.linalg.norm(enc.encode_documents(texts, d, normalize=False),
                                          axis=1).mean()), 4) for d in dims}


def format_report(report: dict[str, Any]) -> str:
    lines = [f"checkpoint   {report['path']}",
             f"family       {report['family']} on {report['device']} ({report['dtype']}), "
             f"packing {report['packing']}",
             f"keys         {report['keys']} mapped: " + ", ".join(
                 f"{k} {n}" for k, n in report["key_groups"].items()),
             f"ignored      {report['ignored_keys'] or 'none'}",
             f"dimensions   hidden {report['hidden_size']}, default {report['dimension']}, "
             f"heads {report['head_dims'] or 'one'}; max length {report['max_length']}",
             f"pooling      {report['pooling']}",
             f"prompts      query {report['query_prompt']!r}; document {report['document_prompt']!r}",
             *([f"plain model  {report['plain_model']} (embeds queries and whole texts; the "
                "checkpoint's weights late-chunk)"] if report.get("plain_model") else []),
             "norms        " + ", ".join(f"{d}: {n}" for d, n in report["norms"].items())
             + " (before normalisation)",
             f"finite       {'no: NaN or inf in outputs' if report['non_finite'] else 'yes'}"]
    if "image_embedding_shape" in report:
        lines.append(f"images       shape {report['image_embedding_shape']}, similarity to "
                     f"'a red image' (red, blue): {report['image_text_similarity']}")
    for row in report["sanity"]:
        weights = f"{row['weights']:<8}" if row.get("weights") else ""
        lines.append(f"{'PASS' if row['passed'] else 'FAIL'}   {weights}dim {row['dim']:>5}  "
                     f"{row['query']!r}: {row['scores']}")
    lines.append("all sanity checks passed" if report["sanity_passed"] else
                 "some sanity checks FAILED (expected for random weights)")
    return "\n".join(lines)

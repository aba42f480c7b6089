"""Write CPython's Python reference topics (``pydoc_data.topics``) as a JSONL corpus.

Usage: python scripts/pydoc_corpus.py OUT.jsonl [--exclude ID,ID,...]

One line per topic: ``{"id": <topic>, "text": <text>}``, sorted by topic. ``--exclude`` leaves
topics out (e.g. a run's held-out documents, to tune on the rest without ever seeing them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from pydoc_data.topics import topics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--exclude", default="", help="comma-separated topic ids to leave out")
    args = parser.parse_args()
    excluded = {x for x in args.exclude.split(",") if x}
    unknown = excluded - set(topics)
    if unknown:
        parser.error(f"unknown topics: {', '.join(sorted(unknown))}")
    lines = [json.dumps({"id": k, "text": v}) for k, v in sorted(topics.items()) if k not in excluded]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} topics to {args.out}")


if __name__ == "__main__":
    main()

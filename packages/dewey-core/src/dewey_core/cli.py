"""The ``dewey`` command line. Each subcommand lives in :mod:`dewey_core.commands`.

Run ``dewey --help`` for the list; ``dewey COMMAND --help`` for each command's options.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand name -> module in dewey_core.commands exposing add_parser(subparsers) and run(args).
COMMANDS = {
    "embed": "embed",
    "search": "search",
    "eval": "evaluate",
    "bench": "bench",
    "verify-checkpoint": "verify",
    "serve": "serve",
    "bench-serve": "bench_serve",
    "train": "train",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dewey",
        description="Late-chunked embeddings: embed, search, evaluate, benchmark, serve, train.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"dewey_core.commands.{module}")
        command = mod.add_parser(sub, name)
        command.set_defaults(handler=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

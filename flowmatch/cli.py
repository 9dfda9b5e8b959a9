"""The `flowmatch` command.  Each subcommand lives in flowmatch/commands/<name>.py, which defines
``register(subparsers)``: it adds its parser and sets ``func`` (args -> exit code)."""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import FlowmatchError

COMMANDS = ("info", "flow", "viz", "compare", "demo", "eval", "submit", "video", "bench", "train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowmatch", description="Optical flow and dense correspondence.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"flowmatch.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FlowmatchError as exc:
        print(f"flowmatch {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"flowmatch {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The `flowmatch` command.  Each subcommand lives in flowmatch/commands/<name>.py, which defines
``register(subparsers)``: it adds its parser and sets ``func`` (args -> exit code).

`main` is the one error boundary: a named flowmatch error or an OS error becomes one line on stderr
and the exit code of EXIT_CODES (never a traceback; ``--debug`` shows it), anything else is a bug and
exits 70 with one line saying so.  Global options (-q/-v, --version, the environment options) are
in commands/_global_options.py; `apply` sets them up inside the boundary."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap
import traceback

from .commands._global_options import VersionAction, add_global_options, add_to_commands, apply
from .errors import ExtensionNotBuiltError, FlowmatchError, MethodUnavailableError, OutputConflictError

COMMANDS = ("info", "flow", "viz", "compare", "demo", "eval", "submit", "video", "bench", "train")

# exit code -> meaning (listed in `flowmatch --help`)
EXIT_CODES = {
    0: "success",
    1: "bad input: an argument, option, image, flow, checkpoint or dataset that flowmatch refused "
       "(the message names it)",
    2: "usage error (unknown command or argument)",
    3: "an output path would overwrite an input (or another output); nothing was written",
    4: "the method cannot run here (missing extension, weights, package or GPU)",
    5: "operating-system error on a file or folder (permission, missing folder, disk full, ...)",
    70: "internal error: a bug in flowmatch (run with --debug and report the traceback)",
    130: "interrupted (Ctrl-C)",
    141: "stdout closed by its reader (e.g. `flowmatch info --json | head`); nothing is printed",
    143: "terminated (SIGTERM; commands that handle it stop cleanly)",
}


def exit_code(exc: BaseException) -> int:
    """The documented exit code for an exception that reached the CLI boundary."""
    if isinstance(exc, OutputConflictError):
        return 3
    if isinstance(exc, (MethodUnavailableError, ExtensionNotBuiltError)):
        return 4
    if isinstance(exc, FlowmatchError):  # InputError, FlowFormatError, CheckpointError, DatasetLayoutError
        return 1
    if isinstance(exc, OSError):
        return 5
    return 70


def _epilog() -> str:
    return "exit codes:\n" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())


def _short_epilog() -> str:
    """The exit codes in one wrapped paragraph, for each command's --help."""
    short = (text.split(" (")[0].split(":")[0].split(";")[0] for text in EXIT_CODES.values())
    return textwrap.fill("exit codes: " + ", ".join(f"{c} {t}" for c, t in zip(EXIT_CODES, short))
                         + " (see flowmatch --help)", 100)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowmatch", description="Optical flow and dense correspondence.",
                                     epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error (anywhere on "
                        "the command line)")
    parser.add_argument("--version", action=VersionAction,
                        help="print the versions of flowmatch and torch, whether the C++ ops are built and "
                             "whether CUDA is available, then exit")
    add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"flowmatch.commands.{name}").register(sub)
    add_to_commands(parser, _short_epilog())  # -q/-v and the environment options after the command name too
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "(no message)"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FlowmatchError):
        return _one_line(str(exc))
    if isinstance(exc, OSError):
        where = f" {exc.filename!r}" if exc.filename else ""
        return _one_line(f"{exc.strerror or exc}{':' if where else ''}{where}" if exc.strerror else str(exc))
    return _one_line(f"internal error {type(exc).__name__}: {exc} (this is a bug; run with --debug for the "
                     "traceback and report it)")


def _quiet_broken_pipe() -> int:
    # stdout's reader went away (`flowmatch info --json | head`): exit quietly, and point stdout at
    # /dev/null so the interpreter's final flush does not raise again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, what a shell pipeline expects


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the command
    args = parser.parse_args([a for a in argv if a != "--debug"])
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    name = f"flowmatch {args.command}"
    undo = None
    try:
        undo = apply(args, name)  # logging level (-q/-v), environment options, --device checked
        rc = int(args.func(args) or 0)
        sys.stdout.flush()
        return rc
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the one boundary: every error ends here as one line + exit code
        if debug:
            traceback.print_exc()
        print(f"{name}: error: {_describe(exc)}", file=sys.stderr)
        return exit_code(exc)
    finally:
        if undo is not None:
            undo()


if __name__ == "__main__":
    sys.exit(main())

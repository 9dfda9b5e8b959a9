"""Options every `flowmatch` command takes, before or after the command name.

    flowmatch -q flow a.png b.png -o f.flo        # same as: flowmatch flow a.png b.png -o f.flo -q
    flowmatch --real-data /data/real train patchbatch --out runs/pb

-q/--quiet and -v/--verbose (repeatable) set the level of the "flowmatch" loggers (flowmatch._logging):
-q: warnings and errors only, no progress bars; -qq: errors only; -v: progress (INFO); -vv: details
(DEBUG).  A command's default is its own: `flow` and `demo` show progress (one pair, a user waits
on it), the many-frame commands show their progress bar instead.  A command's own older `--quiet`
(eval, submit, video) means -q.

The folder/limit options replace environment variables (ENV_OPTIONS; the README lists every
variable): the command runs with the variable set to the option's value, and it is put back after.
"""
from __future__ import annotations

import argparse
import logging
import os
from typing import Any, Callable, Iterator

from ..errors import InputError

# option -> (environment variable it sets, metavar, help)
ENV_OPTIONS: dict[str, tuple[str, str, str]] = {
    "--weights-dir": ("FLOWMATCH_WEIGHTS", "DIR", "folder of the shipped weights (default flowmatch/weights)"),
    "--real-data": ("FLOWMATCH_REAL_DATA", "DIR",
                    "the real sample pairs (demo, training's held-out scores; default ../shared/data/real)"),
    "--photos-dir": ("FLOWMATCH_PHOTOS", "DIR",
                     "photo folder for generated training data (default ../shared/data/photos; "
                     "`train ... --photos` wins)"),
    "--max-image-pixels": ("FLOWMATCH_MAX_IMAGE_PIXELS", "N",
                           "largest image (width×height) decoded (default 2**27)"),
}
_FOLDER_OPTIONS = ("--weights-dir", "--real-data", "--photos-dir")


def _dest(option: str, where: str) -> str:
    return f"_g{where}_{option.lstrip('-').replace('-', '_')}"


class VersionAction(argparse.Action):
    """`--version`: flowmatch, torch, whether the C++ ops are built and whether CUDA is usable; exit 0."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kw: Any) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None) -> None:
        print(version_text())
        parser.exit(0)


def version_text() -> str:
    """One line: versions of flowmatch and torch, the C++ ops and CUDA (devices visible)."""
    import torch

    import flowmatch
    from .. import _devices, _ext

    ops = "built" if _ext.available() else "NOT built (make build)"
    if _ext.available() and _ext.has_cuda_kernels():
        ops += " with CUDA kernels"
    n = _devices.cuda_device_count()
    cuda = f"available ({n} device{'s' if n != 1 else ''})" if n else \
        ("not available" if torch.version.cuda else "not available (CPU build of torch)")
    return f"flowmatch {flowmatch.__version__} (torch {torch.__version__}, C++ ops {ops}, CUDA {cuda})"


def add_global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """Add -q/-v and ENV_OPTIONS to `parser` (the top parser when top, else a command's parser).

    Values land in their own destinations per level (argparse lets a command's parser overwrite the
    top parser's values), merged by `global_values`; options a command already has are left to it."""
    where = "top" if top else "cmd"
    taken = set(parser._option_string_actions)
    group = parser.add_argument_group("global options (before or after the command)") if not top else parser
    flags = [f for f in ("-q", "--quiet") if f not in taken]
    if flags:
        group.add_argument(*flags, dest=_dest("quiet", where), action="count", default=0,
                           help="less output: -q warnings and errors only (no progress), -qq errors only")
    flags = [f for f in ("-v", "--verbose") if f not in taken]
    if flags:
        group.add_argument(*flags, dest=_dest("verbose", where), action="count", default=0,
                           help="more output: -v progress of each stage, -vv details")
    for option, (var, metavar, text) in ENV_OPTIONS.items():
        if option not in taken:
            group.add_argument(option, dest=_dest(option, where), metavar=metavar, default=None,
                               help=f"{text}; replaces ${var}")


def add_to_commands(parser: argparse.ArgumentParser, epilog: str | None = None) -> None:
    """add_global_options on every command parser below `parser` (nested ones too: train MODEL),
    and `epilog` (the exit codes) on those that have none of their own."""
    seen: set[int] = set()

    def walk(p: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    if id(child) not in seen:
                        seen.add(id(child))
                        yield child
                        yield from walk(child)

    for child in list(walk(parser)):
        add_global_options(child, top=False)
        if epilog and not child.epilog:
            child.epilog = epilog


def global_values(args: argparse.Namespace) -> dict[str, Any]:
    """{"quiet": count, "verbose": count, "--weights-dir": value, ...} merged over both levels (a
    command's own `--quiet` counts as -q; the value after the command wins for ENV_OPTIONS)."""
    def get(name: str, where: str, default: Any) -> Any:
        return getattr(args, _dest(name, where), default)

    own_quiet = getattr(args, "quiet", False) is True  # eval/submit/video --quiet (store_true)
    out: dict[str, Any] = {
        "quiet": get("quiet", "top", 0) + get("quiet", "cmd", 0) + int(own_quiet),
        "verbose": get("verbose", "top", 0) + get("verbose", "cmd", 0),
    }
    for option in ENV_OPTIONS:
        cmd = get(option, "cmd", None)
        out[option] = cmd if cmd is not None else get(option, "top", None)
    return out


def environment(values: dict[str, Any]) -> dict[str, str]:
    """The environment variables ENV_OPTIONS given on the command line set (checked first)."""
    env = {}
    for option, (var, _, _) in ENV_OPTIONS.items():
        value = values.get(option)
        if value is None:
            continue
        if option in _FOLDER_OPTIONS and not os.path.isdir(value):
            raise InputError(f"{option} {value!r} is not a folder")
        if option == "--max-image-pixels":
            try:
                ok = int(value) >= 1
            except ValueError:
                ok = False
            if not ok:
                raise InputError(f"--max-image-pixels must be a positive integer, got {value!r}")
            value = str(int(value))
        env[var] = os.path.abspath(value) if option in _FOLDER_OPTIONS else value
    return env


def apply(args: argparse.Namespace, command: str) -> Callable[[], None]:
    """Set up logging, progress (args.quiet) and the environment for one command; check --device.
    Returns the function that undoes the logging and environment changes."""
    from .. import _logging
    from .._devices import require_device

    values = global_values(args)
    args.quiet = values["quiet"] > 0  # what the commands' progress bars read
    if args.quiet and isinstance(getattr(args, "progress", None), bool):
        args.progress = False  # train's --progress/--no-progress: -q means --no-progress
    args.verbose = values["verbose"]
    env = environment(values)
    device = getattr(args, "device", None)
    if isinstance(device, str) and device != "auto":  # train's --device takes auto too
        args.device = str(require_device(device))  # "CPU" -> "cpu": what the methods compare against
    level = _logging.level_for(values["verbose"], values["quiet"], getattr(args, "log_default", logging.WARNING))
    undo_logging = _logging.configure(level, prefix=command)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)

    def undo() -> None:
        undo_logging()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    return undo


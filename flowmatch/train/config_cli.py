"""Command-line options built from a trainer's config dataclass: one place for every setting.

A trainer declares its settings as dataclass fields with ``metadata={"help": ..., "choices": ...,
"type": ...}``; `add_config_arguments` turns each field into ``--field-name`` with the field's default,
and `config_from_args` builds the dataclass back from the parsed namespace.  Rules:

* bool fields become ``--name/--no-name`` flags;
* list fields (``default_factory=list``) are repeatable (``action="append"``); the default is used when
  the option is not given at all;
* tuple fields take ``len(default)`` values (``--crop H W``);
* ``metadata["type"]`` gives the element type when the default is None.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["add_config_arguments", "config_from_args"]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """Add one option per field of dataclass `cls` (except `skip`) to `parser`."""
    for f in dataclasses.fields(cls):
        if f.name in skip or f.metadata.get("cli") is False:
            continue
        meta = f.metadata
        default = _default(f)
        flag = "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta.get("help")}
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, **kwargs)
        elif isinstance(default, list):
            kwargs["help"] = (kwargs["help"] or "") + f" (repeatable; default: {' '.join(map(str, default)) or 'none'})"
            parser.add_argument(flag, action="append", default=None, type=meta.get("type", str), **kwargs)
        elif isinstance(default, tuple):
            parser.add_argument(flag, nargs=len(default), type=meta.get("type", type(default[0])),
                                default=default, **kwargs)
        else:
            typ = meta.get("type", type(default) if default is not None else str)
            parser.add_argument(flag, type=typ, default=default, **kwargs)


def config_from_args(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """Build dataclass `cls` from a namespace made by add_config_arguments (missing fields keep
    their defaults; a repeatable option not given keeps the field's default list)."""
    values = {}
    for f in dataclasses.fields(cls):
        if hasattr(args, f.name):
            v = getattr(args, f.name)
            if v is None and isinstance(_default(f), list):
                continue
            values[f.name] = tuple(v) if isinstance(_default(f), tuple) and v is not None else v
    values.update(overrides)
    return cls(**values)  # type: ignore[call-arg]

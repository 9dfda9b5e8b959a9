"""`flowmatch train MODEL ...`: each trainable model adds its own sub-parser.

A training module listed in TRAINERS defines ``register_cli(subparsers)``."""
from __future__ import annotations

import argparse
import importlib

TRAINERS = ("flowmatch.train.flownet", "flowmatch.train.patchbatch")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train a model (flownets, flownetc, patchbatch)")
    models = parser.add_subparsers(dest="model", metavar="MODEL")
    for name in TRAINERS:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        mod.register_cli(models)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

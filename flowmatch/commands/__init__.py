"""Subcommands of the `flowmatch` command, one module each (see flowmatch/cli.py)."""

"""The ``conformance`` command. Each subcommand lives in ``conformance/commands/<name>.py`` and
exposes ``register(subparsers)`` (adds its parser and sets ``func``)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import conformance.commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conformance", description=__doc__.split("\n")[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(conformance.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"conformance.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

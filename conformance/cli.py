"""The ``conformance`` command. Each subcommand lives in ``conformance/commands/<name>.py`` and
exposes ``register(subparsers)`` (adds its parser and sets ``func``)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import conformance.commands

DESCRIPTION = ("Check that PyTorch models compute the same numbers on every runtime you ship to: "
               "check an ONNX file, run the pre-release gate, replay a failure, rebuild the reports, "
               "or upscale an image with the tutorial's network.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conformance", description=DESCRIPTION,
                                     epilog="Run 'conformance COMMAND --help' for a command's options.")
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

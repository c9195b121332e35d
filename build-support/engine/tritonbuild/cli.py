"""The engine's command line: `python -m tritonbuild <subcommand> ...`.

Each subcommand lives in its own module, which exposes `add_parser(subparsers)`; the parser it
adds sets `handler`, a function taking the parsed arguments and returning the exit status. To
add a subcommand, write such a module and list it in SUBCOMMAND_MODULES.

A `UserError` (bad input) prints `error: <message>` on stderr and exits 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tritonbuild.errors import UserError

__all__ = ["SUBCOMMAND_MODULES", "build_parser", "main"]

SUBCOMMAND_MODULES: tuple[str, ...] = (
    "tritonbuild.validate",
    "tritonbuild.envbuild",
    "tritonbuild.package",
    "tritonbuild.triton.cli",
    "tritonbuild.publish.cli",
    "tritonbuild.endpoint.cli",
)

USER_ERROR_EXIT = 2


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m tritonbuild",
        description="Validate, build and package Triton model folders.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return status

"""The engine's command line: `python -m tritonbuild <subcommand> ...`.

Each subcommand lives in its own module, which exposes `add_parser(subparsers)`; the parser it
adds sets `handler`, a function taking the parsed arguments and returning the exit status. To
add a subcommand, write such a module and list it in SUBCOMMANDS. A command imports only its
own module: `publish` does not wait for tritonclient's import (seconds on a small CI runner).

A `UserError` (bad input) prints `error: <message>` on stderr and exits 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tritonbuild.errors import UserError

__all__ = ["SUBCOMMANDS", "SUBCOMMAND_MODULES", "build_parser", "main"]

# Each subcommand, and the module whose add_parser adds it.
SUBCOMMANDS: dict[str, str] = {
    "validate": "tritonbuild.validate",
    "build-env": "tritonbuild.envbuild",
    "package": "tritonbuild.package",
    "test-triton": "tritonbuild.triton.cli",
    "publish": "tritonbuild.publish.cli",
    "promote": "tritonbuild.publish.cli",
    "endpoint": "tritonbuild.endpoint.cli",
}
SUBCOMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(SUBCOMMANDS.values()))

USER_ERROR_EXIT = 2


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser: with a known `command`, only its module's subcommands; else all."""
    parser = argparse.ArgumentParser(
        prog="python -m tritonbuild",
        description="Validate, build and package Triton model folders.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    modules = (SUBCOMMANDS[command],) if command in SUBCOMMANDS else SUBCOMMAND_MODULES
    for module_name in modules:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return its exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments[0] if arguments else None)
    args = parser.parse_args(arguments)
    try:
        status: int = args.handler(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return status

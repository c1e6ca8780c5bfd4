"""The ``accel`` command.

Each area registers its subcommands from its own module (listed in :data:`COMMAND_MODULES`): a module defines
``register(subparsers)`` and sets ``func`` on each parser it adds; ``func(args)`` returns the exit status. Errors a
user can act on (:class:`accel.errors.AccelError`) are printed without a traceback and give exit status 2, as do usage
errors.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Sequence

from .errors import AccelError

#: Modules that add subcommands, each with ``register(subparsers)``.
COMMAND_MODULES = (
    "accel.commands.devices",
    "accel.commands.models",
    "accel.commands.map",
    "accel.commands.emulate",
    "accel.commands.doctor",
    "accel.commands.rtl",
    "accel.commands.array",
    "accel.commands.fpga",
    "accel.commands.gpu",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors: exit status 2 with the usage line, as argparse does
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="accel", description="Hardware/software co-design for transformer inference on PIM "
                                               "and dataflow hardware.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AccelError as e:
        print(f"accel: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("accel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

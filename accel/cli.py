"""The ``accel`` command.

Each area registers its subcommands from its own module (listed in :data:`COMMAND_MODULES`, by command name): a
module defines ``register(subparsers)``, adds the one command it is named for and sets ``func`` on each parser it adds;
``func(args)`` returns the exit status. A command line naming a command imports only that command's module (start-up
stays lean: ``accel emulate TRACE`` never imports the RTL, the mapper or the FPGA flow); anything else (``accel
--help``, no command, an unknown one) registers them all, so that help and usage errors list every command.

One error path for every command (docs/cli.md, "Errors and options"):

* an error the user can act on (:class:`accel.errors.AccelError`) prints one line, ``accel: error: ...``, and exit
  status 2; so does a usage error (an unknown option, a value argparse refuses);
* a closed pipe (``accel devices --json | head -1``) ends the command quietly (exit status 141, as a process killed
  by SIGPIPE);
* any other exception is a bug in accel: one line that says so, where it happened and how to report it, exit status
  70; ``accel --debug ...`` (or ``ACCEL_DEBUG=1``) prints the traceback of every error;
* progress of long work (:mod:`accel.progress`) goes to stderr, results to stdout.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Sequence

from .errors import AccelError, one_line
from .fmt import value as show

#: Command name -> the module that adds it (``register(subparsers)``), in the order ``accel --help`` lists them.
COMMAND_MODULES = {
    "devices": "accel.commands.devices",
    "models": "accel.commands.models",
    "map": "accel.commands.map",
    "emulate": "accel.commands.emulate",
    "doctor": "accel.commands.doctor",
    "rtl": "accel.commands.rtl",
    "array": "accel.commands.array",
    "fpga": "accel.commands.fpga",
    "gpu": "accel.commands.gpu",
}

#: Exit statuses besides 0 and the commands' own 1 (a check that failed).
EXIT_USER, EXIT_BUG, EXIT_PIPE, EXIT_INTERRUPT = 2, 70, 141, 130

#: Where to report a bug.
REPORT = ("report it with the command line, this message and the output of accel --version to the accel "
          "maintainers (README.md, 'Reporting bugs')")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default (unless it is None, false or already described in the help text) and leaves the
    hidden aliases of :data:`accel.commands.options.HIDDEN_ALIASES` out."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if ("default" in text or d is None or d is False or d is argparse.SUPPRESS or d == []
                or (not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE))):
            return text
        shown = " ".join(map(str, d)) if isinstance(d, (list, tuple)) else str(d)
        return f"{text} (default: {shown.replace('%', '%%')})"

    def _format_action_invocation(self, action: argparse.Action) -> str:
        from .commands.options import HIDDEN_ALIASES

        shown = [s for s in action.option_strings if s not in HIDDEN_ALIASES]
        if len(shown) == len(action.option_strings):
            return super()._format_action_invocation(action)
        saved, action.option_strings = action.option_strings, shown
        try:
            return super()._format_action_invocation(action)
        finally:
            action.option_strings = saved


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # usage errors: one line, exit status 2
        self.exit(EXIT_USER, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def version_text() -> str:
    """``accel X.Y.Z``, with the git commit (and ``-dirty`` for uncommitted changes) when run from a checkout."""
    import subprocess

    from . import __version__

    text = f"accel {__version__}"
    root = Path(__file__).resolve().parent.parent
    if (root / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                                 capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            out = None
        if out is not None and out.returncode == 0 and out.stdout.strip():
            text += f" (git {out.stdout.strip()})"
    return text


class _Version(argparse.Action):
    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None) -> None:
        print(version_text())
        parser.exit()


def command_of(argv: Sequence[str]) -> str | None:
    """The command a command line names (its first argument that is not an option: the top-level options take no
    value), or None if that is not a known command or the top-level help is asked for first (it lists them all)."""
    for a in argv:
        if a in ("-h", "--help"):
            return None
        if not a.startswith("-"):
            return a if a in COMMAND_MODULES else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``accel`` parser: with ``command`` (a name of :data:`COMMAND_MODULES`), that command only; else all."""
    parser = _Parser(prog="accel", description="Hardware/software co-design for transformer inference on PIM "
                                               "and dataflow hardware.")
    parser.add_argument("--version", action=_Version, help="print the version (and git commit) and exit")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of every error (also ACCEL_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in [command] if command else COMMAND_MODULES:
        importlib.import_module(COMMAND_MODULES[name]).register(sub)
    return parser


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False))


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a record is emitted (tests swap it)."""

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _show_progress() -> None:
    log = logging.getLogger("accel")
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        h = _Stderr()
        h.setFormatter(logging.Formatter("accel: %(message)s"))
        log.addHandler(h)
        log.setLevel(logging.INFO)
        log.propagate = False


def _drop_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so that the interpreter's last flush cannot fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return  # not a real file (captured in a test)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _where(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return "unknown place"
    f = frames[-1]
    root = Path(__file__).resolve().parent.parent
    try:
        name = str(Path(f.filename).resolve().relative_to(root))
    except ValueError:
        name = f.filename
    return f"{name}:{f.lineno}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    nul = next((a for a in argv if "\0" in a), None)
    if nul is not None:  # a process's arguments cannot hold one; a caller in Python can pass one
        print(f"accel: error: argument {show(nul)} holds a NUL byte, which no path or value can hold", file=sys.stderr)
        return EXIT_USER
    args = build_parser(command_of(argv)).parse_args(argv)
    debug = args.debug or bool(os.environ.get("ACCEL_DEBUG"))
    _show_progress()
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_PIPE
    except AccelError as e:
        if debug:
            traceback.print_exc()
        print(f"accel: error: {one_line(str(e))}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("accel: interrupted", file=sys.stderr)
        return EXIT_INTERRUPT
    except Exception as e:  # a bug: say so, where, and how to report it
        if debug:
            traceback.print_exc()
        hint = "" if debug else "; run it again with accel --debug for the traceback"
        print(f"accel: internal error (a bug in accel, not in your input): {type(e).__name__}: "
              f"{one_line(str(e))[:300]} at {_where(e)}; {REPORT}{hint}", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())

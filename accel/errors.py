"""Errors the user can act on.

Every error a user can provoke (a bad config, a bad command, a datatype the unit was not built for, a command issued
too early) is an :class:`AccelError`. Its message names the value, the rule and the fix; the CLI prints it on one line
without a traceback and exits with status 2 (docs/cli.md, "Errors and options").

An error found deep inside (an engine refusing the 5th command of stream ``pim0``) knows the command but not the file
it came from: the engine records the command with :func:`caused_by`, and whoever read the file (it knows the line of
every command) puts the place in front of the message with :func:`at`, so the user reads ``prog.txt:12: ...``.
"""
from __future__ import annotations

from typing import TypeVar

__all__ = ["AccelError", "ConfigError", "EncodingError", "StimulusError", "TimingError", "at", "caused_by",
           "one_line"]


class AccelError(Exception):
    """Base class of user-facing errors.

    Members
    -------
    where:
        The place in an input that caused the error (``path``, ``path:line`` or ``path:line:column``) once
        :func:`at` has put it in front of the message; None before.
    command:
        ``(stream name or None, command index)`` of the command that caused it, set by :func:`caused_by` (None for a
        single-stream trace's stream); the reader of the file turns it into a line.
    """

    where: str | None = None
    command: tuple[str | None, int] | None = None


class ConfigError(AccelError, ValueError):
    """A device description breaks a rule (unknown/missing/duplicate key, wrong type, out of range)."""


class EncodingError(AccelError, ValueError):
    """A command field or a numeric value does not fit its format."""


class StimulusError(AccelError, ValueError):
    """Input given to a unit model breaks the unit's contract (value out of format, datatype not built in, ...)."""


class TimingError(AccelError):
    """A command was issued before a timing constraint allows it."""


E = TypeVar("E", bound=AccelError)


def at(error: E, where: str) -> E:
    """Put ``where`` (``path``, ``path:line`` or ``path:line:column``) in front of ``error``'s message, once (an error
    that already names its place keeps it); returns the same error, so ``raise at(e, f"{path}:{n}") from None``."""
    if error.where is None:
        error.where = where
        msg = str(error.args[0]) if error.args else ""
        error.args = (f"{where}: {msg}",) + tuple(error.args[1:])
    return error


def caused_by(error: E, stream: str | None, index: int) -> E:
    """Record that command ``index`` of ``stream`` caused ``error`` (the innermost caller wins); returns it."""
    if error.command is None:
        error.command = (stream, int(index))
    return error


def one_line(message: str) -> str:
    """``message`` on one line: line breaks (a YAML parser's context, a tool's log) become ``; ``."""
    parts = [p.strip() for p in str(message).splitlines()]
    return "; ".join(p for p in parts if p)

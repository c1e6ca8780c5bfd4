"""Errors the user can act on.

Every error a user can provoke (a bad config, a bad command, a datatype the unit was not built for, a command issued
too early) is an :class:`AccelError`. Its message names the value, the rule and the fix; the CLI prints it without a
traceback and exits with status 2.
"""
from __future__ import annotations


class AccelError(Exception):
    """Base class of user-facing errors."""


class ConfigError(AccelError, ValueError):
    """A device description breaks a rule (unknown/missing/duplicate key, wrong type, out of range)."""


class EncodingError(AccelError, ValueError):
    """A command field or a numeric value does not fit its format."""


class StimulusError(AccelError, ValueError):
    """Input given to a unit model breaks the unit's contract (value out of format, datatype not built in, ...)."""


class TimingError(AccelError):
    """A command was issued before a timing constraint allows it."""

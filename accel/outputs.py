"""Output files: checked before a long run, written whole or not at all.

A command that writes a file (a program, plots, a trace, JSON) checks the path first (:func:`check_output_file`,
:func:`check_output_dir`), so that a bad path costs one clear line and no run, and then writes through
:func:`write_atomic`: the bytes go to a temporary file in the same folder, which replaces the target only once it is
complete, so a failure (a full disk, an exception while drawing, Ctrl-C) leaves no half-written file behind.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import AccelError

__all__ = ["OutputError", "check_output_file", "check_output_dir", "write_atomic", "write_text_atomic"]


class OutputError(AccelError):
    """An output cannot be written where it was asked for: the message names the path, the reason and the fix."""


def check_output_file(path: str | Path, what: str = "output") -> Path:
    """``path`` as a file to write: its folder must exist and ``path`` must not be a folder. Raises
    :class:`OutputError`; ``what`` names the option in the message (``--trace``)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path}: is a folder; give a file name (e.g. {path / 'out'})")
    parent = path.parent
    if not parent.is_dir():
        why = "is a file, not a folder" if parent.exists() else "does not exist"
        raise OutputError(f"{what} {path}: the folder {parent} {why}; create it or give another path")
    return path


def check_output_dir(path: str | Path, what: str = "output", create: bool = True) -> Path:
    """``path`` as a folder to write into: an existing folder, or a new one in an existing folder (made now if
    ``create``; a check before a long run passes ``create=False``). Raises :class:`OutputError`."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path}: is a file; give a folder (it is created if missing)")
    if not path.exists():
        check_output_file(path, what)
        if create:
            try:
                path.mkdir()
            except OSError as e:
                raise OutputError(f"{what} {path}: cannot create the folder ({e.strerror})") from None
    return path


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None], what: str = "output") -> Path:
    """Write ``path`` with ``write(f)`` on a binary file: a temporary file in the same folder, renamed over ``path``
    once ``write`` returned; on any failure the temporary file is removed and ``path`` is left as it was.
    An operating-system error becomes an :class:`OutputError` naming the path."""
    path = check_output_file(path, what)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OutputError(f"{what} {path}: cannot write in {path.parent} ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{what} {path}: cannot write ({e.strerror or e})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str, what: str = "output") -> Path:
    """:func:`write_atomic` of a UTF-8 text."""
    return write_atomic(path, lambda f: f.write(text.encode()), what)

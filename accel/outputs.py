"""Output files: checked before a long run, written whole or not at all (the writing side of :mod:`accel.files`,
which reads every file a user hands over).

A command that writes a file (a program, plots, a trace, JSON) checks the path first (:func:`check_output_file`,
:func:`check_output_dir`), so that a bad path costs one clear line and no run, and then writes through
:func:`write_atomic`: the bytes go to a temporary file in the same folder, which replaces the target only once it is
complete, so a failure (a full disk, an exception while drawing, Ctrl-C) leaves no half-written file behind.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from .errors import AccelError
from .fmt import value as show

__all__ = ["OutputError", "check_output_file", "check_output_dir", "locked_dir", "write_atomic", "write_text_atomic"]


class OutputError(AccelError):
    """An output cannot be written where it was asked for: the message names the path, the reason and the fix."""


def check_output_file(path: str | Path, what: str = "output", parents: bool = False) -> Path:
    """``path`` as a file to write: its folder must exist (with ``parents``, missing folders are made now: a
    command's default path such as ``build/wave/x.vcd`` in a fresh checkout) and ``path`` must not be a folder.
    Raises :class:`OutputError`; ``what`` names the option in the message (``--trace``)."""
    path = Path(path)
    if "\0" in str(path):
        raise OutputError(f"{what} {show(str(path))}: not a path (it holds a NUL byte); give another path")
    if path.is_dir():
        raise OutputError(f"{what} {path}: is a folder; give a file name (e.g. {path / 'out'})")
    parent = path.parent
    if not parent.is_dir():
        existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise OutputError(f"{what} {path}: the folder {existing} is a file, not a folder; give another path")
        if not parents:
            raise OutputError(f"{what} {path}: the folder {parent} does not exist; create it or give another path")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{what} {path}: cannot create the folder {parent} ({e.strerror or e}); give another "
                              f"path") from None
    return path


def check_output_dir(path: str | Path, what: str = "output", create: bool = True, parents: bool = False) -> Path:
    """``path`` as a folder to write into: an existing folder, or a new one in an existing folder (made now if
    ``create``; a check before a long run passes ``create=False``); with ``parents``, missing folders above it are
    made too (:func:`check_output_file`). Raises :class:`OutputError`."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path}: is a file; give a folder (it is created if missing)")
    if not path.exists():
        check_output_file(path, what, parents)
        if create:
            try:
                path.mkdir()
            except OSError as e:
                raise OutputError(f"{what} {path}: cannot create the folder ({e.strerror})") from None
    return path


@contextlib.contextmanager
def locked_dir(path: str | Path, what: str = "output", wait: bool = False) -> Iterator[Path]:
    """Hold the folder ``path`` for this process while the block runs: two accel processes that build into one
    folder (the same ``-o``, or one simulator model) would overwrite each other's files half-way. With ``wait`` the
    second waits for the first (then finds its work done); without, it stops at once with an :class:`OutputError`
    naming the process that holds the folder. The lock is an advisory ``flock`` on ``path/.accel-lock``, released when
    the block ends or the process dies."""
    import fcntl

    path = Path(path)
    lock = path / ".accel-lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise OutputError(f"{what} {path}: cannot create {lock.name} there ({e.strerror}); "
                          f"give another folder") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise OutputError(f"{what} {path}: another accel process (pid {holder}) is writing this folder; wait for "
                              f"it to finish or give another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock


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

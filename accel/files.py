"""Output files written whole or not at all."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable

__all__ = ["write_atomic"]


def write_atomic(path: str | Path, write: Callable[[IO], None], binary: bool = False) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file beside it, then rename it into place: a reader
    (or a failure half-way) never sees a half-written file. The file gets the permissions a new file gets (the
    umask's), not the temporary file's private ones."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

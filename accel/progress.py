"""Progress of long work, on stderr only, so that nothing runs for minutes without saying what it is doing and
stdout (``--json`` included) keeps only the result.

Two forms, one for each kind of long work:

- a loop of countable steps (the system engine's blocks, the per-cycle model's cycles, plots) takes a ``progress``
  argument and wraps its work in :func:`progress_bar`, a tqdm bar: ``None`` (the default) shows the bar when stderr
  is a terminal and the loop has run for a second; ``True`` shows it at once whatever stderr is (the CLI's
  ``--progress``); ``False`` never;
- one long call that cannot count its steps (a Verilog export, a simulator build, an FPGA build) runs inside
  :func:`step`, which logs on the ``accel`` logger (level INFO; the CLI shows it on stderr as ``accel: exporting pim
  for aim-gddr6 ...``): when the step starts, every ``every`` seconds that it is still running, and how long it took.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from tqdm import tqdm

__all__ = ["log", "step", "progress_bar", "DELAY_S"]

log = logging.getLogger("accel")

#: Seconds a loop runs before an automatic bar appears (a shorter loop shows none).
DELAY_S = 1.0


def progress_bar(total: int | None, desc: str, unit: str = "it", show: bool | None = None) -> tqdm:
    """A tqdm bar on stderr for ``total`` steps (None: unknown) of ``unit``; ``show`` as in the module docstring.
    Use it as a context manager and call ``update(n)``; a hidden bar costs one method call per update."""
    hidden = (not sys.stderr.isatty()) if show is None else not show
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=hidden, leave=False,
                delay=DELAY_S if show is None else 0.0, dynamic_ncols=True, unit_scale=True)


@contextmanager
def step(what: str, every: float = 30.0) -> Iterator[None]:
    """Log ``what ...`` now, ``still what (N s)`` every ``every`` seconds while the block runs, and ``what: done in
    N s`` when it ends (nothing more if it raises: the error says what happened)."""
    log.info("%s ...", what)
    t0 = time.monotonic()
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            log.info("still %s (%.0f s)", what, time.monotonic() - t0)

    ticker = threading.Thread(target=beat, name="accel-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
    log.info("%s: done in %.1f s", what, time.monotonic() - t0)

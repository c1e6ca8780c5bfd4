"""Progress of long work (Verilog exports, simulator builds, FPGA builds), said on the ``accel`` logger.

The library only logs (``logging.getLogger("accel")``, level INFO); the CLI shows these lines on stderr (``accel:
exporting pim for aim-gddr6 ...``), so nothing runs for minutes without saying what it is doing, and stdout keeps only
the result. :func:`step` says when a step starts, repeats every ``every`` seconds that it is still running, and says
how long it took.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Iterator

__all__ = ["log", "step"]

log = logging.getLogger("accel")


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

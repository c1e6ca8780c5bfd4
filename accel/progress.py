"""The progress bar of long library loops (tqdm), on stderr only.

A loop that can run for more than a second takes a ``progress`` argument and wraps its work in :func:`progress_bar`:
``None`` (the default) shows the bar when stderr is a terminal and the loop has run for a second; ``True`` shows it
at once whatever stderr is (the CLI's ``--progress``); ``False`` never. The bar never writes to stdout, so ``--json``
output stays clean.
"""
from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["progress_bar"]

#: Seconds a loop runs before an automatic bar appears (a shorter loop shows none).
DELAY_S = 1.0


def progress_bar(total: int | None, desc: str, unit: str = "it", show: bool | None = None) -> tqdm:
    """A tqdm bar on stderr for ``total`` steps (None: unknown) of ``unit``; ``show`` as in the module docstring.
    Use it as a context manager and call ``update(n)``; a hidden bar costs one method call per update."""
    hidden = (not sys.stderr.isatty()) if show is None else not show
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=hidden, leave=False,
                delay=DELAY_S if show is None else 0.0, dynamic_ncols=True, unit_scale=True)

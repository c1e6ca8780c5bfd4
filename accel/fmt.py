"""Numbers, sizes and tables as a person reads them: the one formatting helper of every command and report.

``num(12.000048000192)`` is ``12``, ``num(1.53e-05)`` is ``0.0000153``, ``si(16384e9, "B/s")`` is ``16.38 TB/s``,
``size(16384)`` is ``16 KiB``, ``pct(0.4211)`` is ``42.1%``, ``value(x)`` is a short ``repr`` for error messages
(deep or long values are cut, so a message stays one readable line).
"""
from __future__ import annotations

import math
import reprlib
from typing import Any, Sequence

__all__ = ["num", "si_scale", "si", "size", "pct", "plural", "value", "table"]

_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"),
       (1e-12, "p"))
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def num(x: float | int, digits: int = 4) -> str:
    """``x`` with at most ``digits`` significant digits, in plain notation (no exponent between 1e-9 and 1e15),
    trailing zeros dropped; integers exactly."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag >= 15 or mag < -9:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - mag)
    text = f"{round(x, decimals):.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def si_scale(x: float, digits: int = 4) -> tuple[float, str]:
    """The factor and SI prefix that put ``abs(x)`` between 1 and 1000 once rounded to ``digits`` significant digits
    (tera down to pico; ``(1.0, "")`` for 0 or a value that is not finite): an axis scaled by one factor."""
    if not math.isfinite(x) or x == 0:
        return 1.0, ""
    for scale, prefix in _SI:
        if abs(x) >= scale * (1 - 0.5 * 10 ** (1 - digits)):
            return 1 / scale, prefix
    return 1e12, "p"


def si(x: float, unit: str, digits: int = 4) -> str:
    """``x`` (in ``unit``) with an SI prefix: ``si(2e9, "Hz")`` is ``2 GHz``, ``si(5e-7, "s")`` is ``500 ns``."""
    factor, prefix = si_scale(x, digits)
    return f"{num(x * factor, digits)} {prefix}{unit}"


def size(nbytes: float, digits: int = 4) -> str:
    """A size in bytes with a binary prefix: ``size(2048)`` is ``2 KiB``, ``size(16 * 2**30)`` is ``16 GiB``."""
    v, i = float(nbytes), 0
    while abs(v) >= 1024 and i < len(_BINARY) - 1:
        v /= 1024
        i += 1
    return f"{num(v, digits)} {_BINARY[i]}"


def pct(fraction: float, decimals: int = 1) -> str:
    """A fraction as a percentage: ``pct(0.4211)`` is ``42.1%``."""
    return f"{fraction * 100:.{decimals}f}%"


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, "cycle")`` is ``1 cycle``, ``plural(3, "cycle")`` is ``3 cycles`` (``many``: an irregular
    plural)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlong = 40


def value(v: Any) -> str:
    """A short ``repr`` of a value a user gave, for an error message (long or deep values are cut with ``...``)."""
    return _REPR.repr(v)


def table(rows: Sequence[Sequence[Any]]) -> str:
    """Rows of cells (the first is the header) as left-aligned columns separated by two spaces; numbers are
    formatted with :func:`num`, ``None`` as ``-``."""
    cells = [[("-" if c is None else num(c) if isinstance(c, float) else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)

"""Weight datatypes (BitMoD-style) and their bit-serial terms: the one definition, re-exported by
:mod:`accel.numerics` (docs/numerics.md, "Weight datatypes").

Every weight datatype maps a ``code_bits``-wide code to a small signed integer value:

* ``int8``, ``int4``, ``int3``: two's complement codes.
* FP4 (E2M1 scaled by 2): code = sign bit above a 3-bit magnitude index into {0, 1, 2, 3, 4, 6, 8, 12}. The spare
  code (negative zero, ``0b1000``) holds one extra value: +10 / -10 (extra resolution, ``fp4_er_pos``/``_neg``) or
  +16 / -16 (extra asymmetry, ``fp4_ea_pos``/``_neg``).
* FP3: sign bit above a 2-bit magnitude index into {0, 1, 2, 4}; the spare code ``0b100`` holds +3 / -3
  (``fp3_er_*``) or +6 / -6 (``fp3_ea_*``).

The bit-serial unit consumes one signed power-of-two *term* per weight per cycle: integers as radix-4 Booth digits,
FP values as at most two powers of two (:meth:`DataType.term_table`).

This module imports no numpy at load time (only the array methods :attr:`DataType.grid`, :meth:`DataType.decode` and
:meth:`DataType.encode` use it): every device description is checked against :data:`DATATYPES` when it is loaded, and
commands that need no arrays (``accel emulate`` on an AiM trace) start without numpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from .errors import StimulusError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DataType", "DATATYPES", "Term", "wrap", "booth_terms"]


def wrap(value: int, bits: int) -> int:
    """Two's complement wrap of ``value`` (an int, or an int64 array for ``bits`` < 63) to ``bits`` bits."""
    value = value & ((1 << bits) - 1)
    return value - ((value >> (bits - 1)) << bits)


@dataclass(frozen=True)
class Term:
    """One signed power-of-two term: contributes ``0`` if ``zero`` else ``±(a << shift)``."""

    negative: bool
    shift: int
    zero: bool

    def apply(self, a: int) -> int:
        if self.zero:
            return 0
        return -(a << self.shift) if self.negative else (a << self.shift)


_ZERO = Term(False, 0, True)


def booth_terms(value: int, bits: int) -> tuple[Term, ...]:
    """Radix-4 Booth digits of a ``bits``-wide two's complement ``value`` as terms, least significant first."""
    n = (bits + 1) // 2
    u = value & ((1 << (2 * n)) - 1)  # sign-extended to an even width
    terms = []
    prev = 0
    for i in range(n):
        b0 = (u >> (2 * i)) & 1
        b1 = (u >> (2 * i + 1)) & 1
        digit = -2 * b1 + b0 + prev
        prev = b1
        if digit == 0:
            terms.append(_ZERO)
        else:
            terms.append(Term(digit < 0, 2 * i + (abs(digit) == 2), False))
    return tuple(terms)


def _pow2_terms(value: int, n: int) -> tuple[Term, ...]:
    """``value`` as at most ``n`` signed powers of two (largest first), padded with zero terms."""
    mag, neg = abs(value), value < 0
    terms = []
    while mag:
        shift = mag.bit_length() - 1
        terms.append(Term(neg, shift, False))
        mag -= 1 << shift
    if len(terms) > n:
        raise ValueError(f"{value} needs {len(terms)} power-of-two terms, more than {n}")
    return tuple(terms) + (_ZERO,) * (n - len(terms))


@dataclass(frozen=True)
class DataType:
    """A weight datatype: ``code_bits``-wide codes, each standing for a small signed integer."""

    name: str
    code_bits: int
    kind: str  # "int" or "fp"
    special: int | None = None  # value held by the spare (negative zero) code of FP types

    @cached_property
    def values(self) -> tuple[int, ...]:
        """Value of every code, indexed by code."""
        n = 1 << self.code_bits
        if self.kind == "int":
            return tuple(wrap(c, self.code_bits) for c in range(n))
        mags = {4: (0, 1, 2, 3, 4, 6, 8, 12), 3: (0, 1, 2, 4)}[self.code_bits]
        half = n // 2
        vals = []
        for c in range(n):
            if c == half:
                vals.append(self.special)
            elif c < half:
                vals.append(mags[c])
            else:
                vals.append(-mags[c - half])
        return tuple(vals)

    @cached_property
    def grid(self) -> np.ndarray:
        """The distinct representable values, sorted."""
        import numpy as np

        return np.array(sorted(set(self.values)), dtype=np.int64)

    @cached_property
    def code_of(self) -> dict[int, int]:
        """Value -> code (the first code of a value)."""
        out: dict[int, int] = {}
        for c, v in enumerate(self.values):
            out.setdefault(v, c)
        return out

    @property
    def max_abs(self) -> int:
        return max(abs(v) for v in self.values)

    @property
    def terms(self) -> int:
        """Signed terms (cycles) per weight."""
        return (self.code_bits + 1) // 2 if self.kind == "int" else 2

    @cached_property
    def term_table(self) -> tuple[tuple[Term, ...], ...]:
        """Terms of every code, indexed by code, each ``terms`` long."""
        if self.kind == "int":
            return tuple(booth_terms(v, self.code_bits) for v in self.values)
        return tuple(_pow2_terms(v, self.terms) for v in self.values)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes -> integer values."""
        import numpy as np

        codes = np.asarray(codes, dtype=np.int64)
        if codes.size and (codes.min() < 0 or codes.max() >= (1 << self.code_bits)):
            bad = codes[(codes < 0) | (codes >= (1 << self.code_bits))].flat[0]
            raise StimulusError(f"weight code {int(bad)} does not fit {self.name} "
                                f"({self.code_bits}-bit codes, 0..{(1 << self.code_bits) - 1})")
        return np.asarray(self.values, dtype=np.int64)[codes]

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Integer values (each representable) -> codes."""
        import numpy as np

        values = np.asarray(values, dtype=np.int64)
        lut = self.code_of
        try:
            return np.vectorize(lambda v: lut[int(v)], otypes=[np.int64])(values) if values.size else values
        except KeyError as e:
            raise StimulusError(f"value {e.args[0]} is not representable in {self.name} "
                                f"(values {sorted(set(self.values))})") from None


def _make_datatypes() -> dict[str, DataType]:
    dts = [DataType("int8", 8, "int"), DataType("int4", 4, "int"), DataType("int3", 3, "int")]
    for sign, s in (("pos", 1), ("neg", -1)):
        dts.append(DataType(f"fp4_er_{sign}", 4, "fp", 10 * s))
    for sign, s in (("pos", 1), ("neg", -1)):
        dts.append(DataType(f"fp4_ea_{sign}", 4, "fp", 16 * s))
    for sign, s in (("pos", 1), ("neg", -1)):
        dts.append(DataType(f"fp3_er_{sign}", 3, "fp", 3 * s))
    for sign, s in (("pos", 1), ("neg", -1)):
        dts.append(DataType(f"fp3_ea_{sign}", 3, "fp", 6 * s))
    return {d.name: d for d in dts}


#: All weight datatypes by name. Their order is the ``dtype`` code (``accel.config.BITSERIAL_DATATYPES``).
DATATYPES: dict[str, DataType] = _make_datatypes()

"""Golden numerics: integer formats, BitMoD-style datatypes, bit-serial decomposition, group dot products.

Everything here is integer and bit-exact: the RTL and the per-cycle models compute exactly these functions.

Datatypes
---------
Every weight datatype maps a ``code_bits``-wide code to a small signed integer value:

* ``int8``, ``int4``, ``int3``: two's complement codes.
* FP4 (E2M1 scaled by 2): code = sign bit above a 3-bit magnitude index into {0, 1, 2, 3, 4, 6, 8, 12}. The spare
  code (negative zero, ``0b1000``) holds one extra value: +10 / -10 (extra resolution, ``fp4_er_pos``/``_neg``) or
  +16 / -16 (extra asymmetry, ``fp4_ea_pos``/``_neg``).
* FP3: sign bit above a 2-bit magnitude index into {0, 1, 2, 4}; the spare code ``0b100`` holds +3 / -3
  (``fp3_er_*``) or +6 / -6 (``fp3_ea_*``).

Bit-serial decomposition
------------------------
The unit consumes one signed power-of-two *term* per weight per cycle: a term is ``(negative, shift, zero)`` and
contributes ``±(activation << shift)`` or nothing. Integers use radix-4 Booth digits (``ceil(bits / 2)`` terms: INT8 in
4 cycles, INT4 and INT3 in 2), FP values are at most two powers of two (12 = 8 + 4, 10 = 8 + 2, 3 = 2 + 1): 2 terms.
This is the cycle count BitMoD's simulator charges (``ceil(bits / 2)`` per weight).

Group dot product
-----------------
A group of ``group_size`` weights shares a datatype and an unsigned integer scale. The unit computes
``psum = sum(a_i * w_i)`` over the group, then the bit-serial dequantiser multiplies by the scale MSB first
(``r = (r << 1) + (psum if scale_bit else 0)``) and adds ``r`` into the result. Partial sums and the result wrap at
``acc_bits`` (two's complement), as the registers do.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .errors import StimulusError

__all__ = [
    "DataType", "DATATYPES", "Term", "wrap", "booth_terms", "dequant_serial", "group_dot", "bitserial_dot",
]


def wrap(value: int, bits: int) -> int:
    """Two's complement wrap of ``value`` to ``bits`` bits."""
    mask = (1 << bits) - 1
    value &= mask
    return value - (1 << bits) if value >> (bits - 1) else value


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
        codes = np.asarray(codes, dtype=np.int64)
        if codes.size and (codes.min() < 0 or codes.max() >= (1 << self.code_bits)):
            bad = codes[(codes < 0) | (codes >= (1 << self.code_bits))].flat[0]
            raise StimulusError(f"weight code {int(bad)} does not fit {self.name} "
                                f"({self.code_bits}-bit codes, 0..{(1 << self.code_bits) - 1})")
        return np.asarray(self.values, dtype=np.int64)[codes]

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Integer values (each representable) -> codes."""
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


def dequant_serial(psum: int, scale: int, scale_bits: int, acc_bits: int) -> int:
    """The dequantiser's result for one group: ``psum * scale`` computed MSB first, wrapped at ``acc_bits``."""
    r = 0
    for i in reversed(range(scale_bits)):
        r = wrap((r << 1) + (psum if (scale >> i) & 1 else 0), acc_bits)
    return r


def group_dot(acts: np.ndarray, values: np.ndarray, acc_bits: int) -> int:
    """Partial sum of one group, wrapped at ``acc_bits``."""
    return wrap(int(np.dot(np.asarray(acts, dtype=np.int64), np.asarray(values, dtype=np.int64))), acc_bits)


def bitserial_dot(acts: np.ndarray, codes: np.ndarray, dtypes: list[str], scales: list[int], group_size: int,
                  scale_bits: int, acc_bits: int) -> int:
    """Golden result of one dot product through the bit-serial unit.

    ``acts`` and ``codes`` hold ``len(dtypes) * group_size`` elements; group ``g`` uses ``dtypes[g]`` and
    ``scales[g]``.
    """
    acts = np.asarray(acts, dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    acc = 0
    for g, (dt, sc) in enumerate(zip(dtypes, scales)):
        sl = slice(g * group_size, (g + 1) * group_size)
        psum = group_dot(acts[sl], DATATYPES[dt].decode(codes[sl]), acc_bits)
        acc = wrap(acc + dequant_serial(psum, sc, scale_bits, acc_bits), acc_bits)
    return acc

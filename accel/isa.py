"""The command set and its binary encoding.

A command is one 64-bit word. The low bits are the same for every family (``family``, then ``op``); the rest is the
family's own field table. Each field table is the single source of truth: the Python encoder and decoder and the
Amaranth layout (:meth:`FieldTable.layout`, a ``data.StructLayout``) are all derived from it, and
``tests/test_isa.py`` proves them equal bit for bit. Fields are packed least significant first, in table order,
exactly as Amaranth packs a ``StructLayout``.

Data that does not fit a command word (weights, vectors, global-buffer contents) travels as separate data words that
follow the command in a program; a command's ``count`` field gives run-length form (for example "MAC columns
``col .. col + count - 1`` at their earliest legal cycles"); its meaning is always the expanded per-command stream.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import EncodingError

__all__ = [
    "WORD_BITS", "Family", "PimOp", "AttnOp", "BitSerialOp", "VectorOp", "FieldTable", "TABLES", "OPS",
    "Command", "encode", "decode", "check_device_fits",
]

WORD_BITS = 64


class Family(enum.IntEnum):
    PIM = 0
    ATTN = 1
    BITSERIAL = 2
    VECTOR = 3


class PimOp(enum.IntEnum):
    """PIM channel commands (AiM / HBM-PIM style)."""

    NOP = 0
    ACT = 1      #: open ``row`` in ``bank`` (all banks if ``all_banks``)
    PRE = 2      #: close the open row of ``bank`` (all banks if ``all_banks``)
    RD = 3       #: read ``count`` columns from ``col`` of the open row
    WR = 4       #: write ``count`` columns from ``col`` (data words follow)
    WRGB = 5     #: write ``count`` columns of the global buffer from ``col`` (data words follow)
    MAC = 6      #: multiply ``count`` columns from ``col`` of the open row with the global buffer, accumulate
    RDMAC = 7    #: read the MAC register of ``bank`` (all banks if ``all_banks``)
    CLRMAC = 8   #: clear the MAC register(s)
    REF = 9      #: refresh (all banks)
    CFR = 10     #: write configuration register ``col`` with value ``row`` (AiM's ``W CFR``)


class AttnOp(enum.IntEnum):
    """Spatial attention array commands."""

    NOP = 0
    LOAD_Q = 1     #: load a Q tile of ``m`` queries x ``k`` head dims from ``addr``
    LOAD_KV = 2    #: stream ``n`` keys/values of head dim ``k`` from ``addr`` in chunks of the array's rows
    STORE_O = 3    #: write the O tile to ``addr``
    ATTEND = 4     #: run the online-softmax cascade over the loaded chunks (``causal`` masks)
    GEMM = 5       #: ``m`` x ``k`` x ``n`` GEMM with ``dataflow`` (0 os, 1 ws, 2 is)


class BitSerialOp(enum.IntEnum):
    """Bit-serial MAC unit commands."""

    NOP = 0
    DOT = 1        #: ``outputs`` dot products of ``groups`` groups each; weights/metadata stream from ``addr``
    SETACT = 2     #: load ``groups`` groups of activations from ``addr``


class VectorOp(enum.IntEnum):
    """Vector unit commands."""

    NOP = 0
    LAYERNORM = 1
    RMSNORM = 2
    GELU = 3
    SILU = 4
    ADD = 5
    MUL = 6
    SOFTMAX = 7
    REDUCE = 8     #: sum ``count`` partial-sum vectors of ``length`` (K-split reduction)
    COPY = 9


OPS: dict[Family, type[enum.IntEnum]] = {
    Family.PIM: PimOp, Family.ATTN: AttnOp, Family.BITSERIAL: BitSerialOp, Family.VECTOR: VectorOp,
}

_HEADER = (("family", 2), ("op", 4))


@dataclass(frozen=True)
class FieldTable:
    """Fields of one command family, least significant first (after the common header)."""

    family: Family
    fields: tuple[tuple[str, int], ...]
    signed: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.bits > WORD_BITS:
            raise ValueError(f"{self.family.name} fields need {self.bits} bits, more than {WORD_BITS}")

    @property
    def all_fields(self) -> tuple[tuple[str, int], ...]:
        return _HEADER + self.fields

    @property
    def bits(self) -> int:
        return sum(w for _, w in self.all_fields)

    def offsets(self) -> dict[str, tuple[int, int]]:
        """Field name -> (offset, width) in the word."""
        out, pos = {}, 0
        for name, width in self.all_fields:
            out[name] = (pos, width)
            pos += width
        return out

    def width(self, name: str) -> int:
        return self.offsets()[name][1]

    def encode(self, op: int, **values: int) -> int:
        ops = OPS[self.family]
        if op not in set(ops):
            raise EncodingError(f"{self.family.name} op {op!r} does not exist; ops are "
                                f"{', '.join(o.name for o in ops)}")
        names = {n for n, _ in self.fields}
        for k in values:
            if k not in names:
                raise EncodingError(f"{self.family.name} commands have no field {k!r}; fields are "
                                    f"{', '.join(n for n, _ in self.fields)}")
        word = 0
        full = {"family": int(self.family), "op": int(op), **values}
        for name, (off, width) in self.offsets().items():
            v = int(full.get(name, 0))
            if name in self.signed:
                lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
            else:
                lo, hi = 0, (1 << width) - 1
            if not lo <= v <= hi:
                raise EncodingError(f"{self.family.name}.{ops(op).name} field {name} = {v}: must be between {lo} "
                                    f"and {hi} ({width} bits{', signed' if name in self.signed else ''})")
            word |= (v & ((1 << width) - 1)) << off
        return word

    def decode(self, word: int) -> dict[str, int]:
        out = {}
        for name, (off, width) in self.offsets().items():
            v = (word >> off) & ((1 << width) - 1)
            if name in self.signed and v >> (width - 1):
                v -= 1 << width
            out[name] = v
        return out

    def layout(self):
        """The Amaranth ``data.StructLayout`` of this family's command word (padded to :data:`WORD_BITS`)."""
        from amaranth.hdl import signed, unsigned
        from amaranth.lib import data

        members = {n: (signed(w) if n in self.signed else unsigned(w)) for n, w in self.all_fields}
        if self.bits < WORD_BITS:
            members["_pad"] = unsigned(WORD_BITS - self.bits)
        return data.StructLayout(members)


TABLES: dict[Family, FieldTable] = {
    Family.PIM: FieldTable(Family.PIM, (
        ("all_banks", 1), ("channel", 8), ("bank", 6), ("row", 18), ("col", 10), ("count", 11),
    )),
    Family.ATTN: FieldTable(Family.ATTN, (
        ("m", 12), ("k", 10), ("n", 20), ("dataflow", 2), ("causal", 1), ("addr", 13),
    )),
    Family.BITSERIAL: FieldTable(Family.BITSERIAL, (
        ("groups", 12), ("outputs", 16), ("addr", 24),
    )),
    Family.VECTOR: FieldTable(Family.VECTOR, (
        ("length", 20), ("count", 10), ("src", 12), ("dst", 12),
    )),
}


@dataclass(frozen=True)
class Command:
    """One decoded command."""

    family: Family
    op: int
    fields: Mapping[str, int] = field(default_factory=dict)

    def encode(self) -> int:
        return TABLES[self.family].encode(self.op, **self.fields)

    @property
    def name(self) -> str:
        return f"{self.family.name}.{OPS[self.family](self.op).name}"

    def __str__(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.fields.items() if v)
        return f"{self.name} {args}".rstrip()


def encode(family: Family | str, op: int | str, **values: int) -> int:
    """Encode a command word: ``encode("pim", "MAC", bank=3, col=0, count=64)``."""
    try:
        fam = Family[family.upper()] if isinstance(family, str) else Family(family)
    except (KeyError, ValueError):
        raise EncodingError(f"command family {family!r} does not exist; families are "
                            f"{', '.join(f.name.lower() for f in Family)}") from None
    ops = OPS[fam]
    if isinstance(op, str):
        try:
            op = ops[op.upper()]
        except KeyError:
            raise EncodingError(f"{fam.name} op {op!r} does not exist; ops are "
                                f"{', '.join(o.name for o in ops)}") from None
    return TABLES[fam].encode(int(op), **values)


def decode(word: int) -> Command:
    """Decode a command word."""
    if not 0 <= word < (1 << WORD_BITS):
        raise EncodingError(f"command word {word:#x} is not a {WORD_BITS}-bit unsigned integer")
    fam = Family(word & 0b11)
    table = TABLES[fam]
    values = table.decode(word)
    op = values.pop("op")
    values.pop("family")
    if op not in set(OPS[fam]):
        raise EncodingError(f"command word {word:#018x}: {fam.name} op {op} does not exist")
    if word >> table.bits:
        raise EncodingError(f"command word {word:#018x}: bits above {table.bits} must be zero")
    return Command(fam, OPS[fam](op), values)


def check_device_fits(device: Any) -> None:
    """Raise :class:`EncodingError` if a device has more channels/banks/rows/columns than command fields address."""
    from .config import ConfigError, DeviceConfig

    if not isinstance(device, DeviceConfig):
        raise ConfigError(f"device = {device!r}: must be a DeviceConfig (load one with accel.config.load_preset)")
    p = device.pim
    t = TABLES[Family.PIM]
    for key, need in (("channel", p.channels - 1), ("bank", p.banks - 1), ("row", p.rows - 1),
                      ("col", p.columns - 1)):
        if need >= (1 << t.width(key)):
            raise EncodingError(f"device {device.name}: PIM field {key} is {t.width(key)} bits but must address "
                                f"{need + 1} values; use a smaller preset")

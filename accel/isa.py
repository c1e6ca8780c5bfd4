"""The command set and its binary encoding.

A command is one 64-bit word. The low bits are the same for every family (``family``: 3 bits, then ``op``: 4
bits); the rest is the family's own field table. Each field table is the single source of truth: the Python encoder
and decoder and the Amaranth layout (:meth:`FieldTable.layout`, a ``data.StructLayout``) are all derived from it,
and ``tests/test_isa.py`` proves them equal bit for bit. Fields are packed least significant first, in table order,
exactly as Amaranth packs a ``StructLayout``.

Families: PIM (channel commands), ATTN (attention array), BITSERIAL (the bit-serial unit on its own), VECTOR (vector
unit), SYNC (cross-stream dependencies and markers, executed by a stream's sequencer: :mod:`accel.program`) and
LINK (the data mover). Data that does not fit a command word (weights, vectors, global-buffer contents) travels as
separate data words that follow the command in a program; a command's ``count`` field gives run-length form (for
example "MAC columns ``col .. col + count - 1`` at their earliest legal cycles"); its meaning is always the
expanded per-command stream.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from .errors import EncodingError

__all__ = [
    "WORD_BITS", "Family", "PimOp", "AttnOp", "BitSerialOp", "VectorOp", "SyncOp", "LinkOp", "Endpoint",
    "FieldTable", "TABLES", "OPS", "Command", "encode", "decode", "check_device_fits",
]

WORD_BITS = 64


class Family(enum.IntEnum):
    PIM = 0
    ATTN = 1
    BITSERIAL = 2
    VECTOR = 3
    SYNC = 4       #: cross-stream dependencies and markers, executed by a stream's sequencer (any stream)
    LINK = 5       #: transfers on the device's link (the ``link`` stream)


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
    """Spatial attention array commands (``count`` repeats the command, e.g. once per head; 0 means 1). Loading Q/K/V
    tiles into the array and storing O are transfers on the link."""

    NOP = 0
    ATTEND = 1     #: ``m`` queries over ``n`` keys of head dimension ``k`` (online-softmax cascade; ``causal`` masks)
    GEMM = 2       #: ``m`` x ``k`` x ``n`` GEMM with ``dataflow`` (0 os, 1 ws, 2 is)


class BitSerialOp(enum.IntEnum):
    """Bit-serial MAC unit commands."""

    NOP = 0
    DOT = 1        #: ``outputs`` dot products of ``groups`` groups each; weights/metadata stream from ``addr``
    SETACT = 2     #: load ``groups`` groups of activations from ``addr``


class VectorOp(enum.IntEnum):
    """Vector unit commands: ``count`` rows of ``length`` elements (``count`` 0 means 1). ``src``, ``src2`` and
    ``dst`` are line addresses in the unit's buffer (a line holds ``lanes`` elements; a row starts on a line); the
    passes and latencies of each op are in :mod:`accel.interfaces.vector`."""

    NOP = 0
    LAYERNORM = 1  #: per row: mean/variance pass, normalise pass; ``src2``: gamma then beta (one row each)
    RMSNORM = 2    #: per row: mean-square pass, normalise pass; ``src2``: gamma (one row)
    GELU = 3
    SILU = 4
    MUL = 5        #: elementwise ``src * src2`` (gated MLP)
    ADD = 6        #: elementwise ``src + src2`` (residual)
    SOFTMAX = 7    #: per row: max pass, exp-and-sum pass, divide pass
    ROPE = 8       #: rotary embedding; ``src2``: the rotation factors (one line per source line)
    REDUCE = 9     #: sum of ``count`` partial-sum rows into one row (K-split reduction)
    TOPK = 10      #: per row: the ``src2`` largest values and their indices (MoE routing); ``src2`` is k here
    COPY = 11
    QUANT = 12     #: requantise to the activation format (scale, round)


class SyncOp(enum.IntEnum):
    """Sequencer commands (family SYNC), allowed in every stream; they never reach the unit."""

    NOP = 0
    SIGNAL = 1     #: event (this stream, ``token``): visible when every earlier command of the stream has completed
    WAIT = 2       #: the k-th ``WAIT stream=s token=t`` waits for the k-th ``SIGNAL token=t`` of stream ``s`` (index)
    MARK = 3       #: zero-cost marker: operator ``id`` starts here in this stream
    REPEAT = 4     #: the next ``id`` words (unit commands) run ``token`` times in a row (``REPEAT times=N words=W``)


class LinkOp(enum.IntEnum):
    """Link commands (the ``link`` stream)."""

    NOP = 0
    XFER = 1       #: move ``bytes`` from endpoint ``src`` to endpoint ``dst`` (``addr``: line in the on-chip buffer)


class Endpoint(enum.IntEnum):
    """Endpoint codes of a LINK transfer that are not PIM channels (codes ``0 .. 255`` are channels ``pim0 ..``)."""

    VECTOR = 256
    ARRAY = 257
    HOST = 258
    ALL = 259      #: every PIM channel (the global-buffer input broadcast; a destination only)
    DEVICE = 260   #: device 0 of a multi-device system; device K is ``DEVICE + K`` (``dK``: destinations of the
    #:                interconnect port's transfers only, ``net`` streams)


OPS: dict[Family, type[enum.IntEnum]] = {
    Family.PIM: PimOp, Family.ATTN: AttnOp, Family.BITSERIAL: BitSerialOp, Family.VECTOR: VectorOp,
    Family.SYNC: SyncOp, Family.LINK: LinkOp,
}

_HEADER = (("family", 3), ("op", 4))


@dataclass(frozen=True)
class FieldTable:
    """Fields of one command family, least significant first (after the common header)."""

    family: Family
    fields: tuple[tuple[str, int], ...]
    signed: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.bits > WORD_BITS:
            raise ValueError(f"{self.family.name} fields need {self.bits} bits, more than {WORD_BITS}")
        out, pos = {}, 0
        for name, width in self.all_fields:
            out[name] = (pos, width)
            pos += width
        object.__setattr__(self, "_offsets", MappingProxyType(out))

    @property
    def all_fields(self) -> tuple[tuple[str, int], ...]:
        return _HEADER + self.fields

    @property
    def bits(self) -> int:
        return sum(w for _, w in self.all_fields)

    def offsets(self) -> Mapping[str, tuple[int, int]]:
        """Field name -> (offset, width) in the word (read-only)."""
        return self._offsets

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
        ("m", 13), ("k", 14), ("n", 17), ("dataflow", 2), ("causal", 1), ("count", 10),
    )),
    Family.BITSERIAL: FieldTable(Family.BITSERIAL, (
        ("groups", 12), ("outputs", 16), ("addr", 24),
    )),
    Family.VECTOR: FieldTable(Family.VECTOR, (
        ("length", 14), ("count", 10), ("src", 11), ("src2", 11), ("dst", 11),
    )),
    Family.SYNC: FieldTable(Family.SYNC, (
        ("stream", 16), ("token", 20), ("id", 20),
    )),
    Family.LINK: FieldTable(Family.LINK, (
        ("src", 9), ("dst", 9), ("bytes", 24), ("addr", 15),
    )),
}


_HEADER_OFFSETS = TABLES[Family.PIM].offsets()
_FAMILY_CODES = frozenset(int(f) for f in Family)


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
    off, width = _HEADER_OFFSETS["family"]
    code = (word >> off) & ((1 << width) - 1)
    if code not in _FAMILY_CODES:
        raise EncodingError(f"command word {word:#018x}: family {code} does not exist; families are "
                            f"{', '.join(f'{f.name} ({int(f)})' for f in Family)}")
    fam = Family(code)
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
    v = TABLES[Family.VECTOR]
    if device.vector.buffer_lines > 1 << v.width("dst"):
        raise EncodingError(f"device {device.name}: the vector buffer has {device.vector.buffer_lines} lines but the "
                            f"VECTOR address fields reach {1 << v.width('dst')}; use a smaller buffer_bytes")

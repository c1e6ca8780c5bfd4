"""The one device description.

Each unit has a frozen parameter dataclass whose invariants are checked on construction and whose derived values are
properties (never recomputed elsewhere). :class:`DeviceConfig` bundles them. Presets live as YAML in
``accel/presets/``; :func:`load_device` reads them strictly: unknown, duplicate and missing keys, wrong types and
out-of-range values are rejected with a message naming the file, the key path, the value and the rule.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .errors import ConfigError, at
from .files import read_yaml
from .fmt import value as show

if TYPE_CHECKING:   # fractions (and decimal under it) only where clocks are derived: not at every start-up
    from fractions import Fraction

__all__ = [
    "BITSERIAL_DATATYPES", "BitSerialConfig", "PimTiming", "PimConfig", "BankUnit", "storage_bits",
    "AttentionConfig", "GemmConfig", "GEMM_ACC_GUARD", "VectorConfig", "LinkConfig", "InterconnectConfig",
    "EnergyConfig", "Clocks",
    "DeviceConfig", "load_device", "load_preset", "preset_names", "device_from_dict", "ConfigError",
]

#: Datatypes a bit-serial unit can be built for, in the order of their ``dtype`` code (see ``accel/datatypes.py``).
BITSERIAL_DATATYPES: tuple[str, ...] = (
    "int8", "int4", "int3",
    "fp4_er_pos", "fp4_er_neg", "fp4_ea_pos", "fp4_ea_neg",
    "fp3_er_pos", "fp3_er_neg", "fp3_ea_pos", "fp3_ea_neg",
)


def _require(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {show(value)}: {rule}")


def _pow2(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


def _int_range(key: str, value: int, lo: int, hi: int | None = None) -> None:
    if hi is None:
        _require(value >= lo, key, value, f"must be at least {lo}")
    else:
        _require(lo <= value <= hi, key, value, f"must be between {lo} and {hi}")


@dataclass(frozen=True)
class BitSerialConfig:
    """A bit-serial MAC unit (after BitMoD): weights one signed term per cycle, activations in parallel.

    Parameters
    ----------
    lanes:
        Multipliers working in parallel; one weight beat carries ``lanes`` weights and activations.
    act_bits:
        Width of a signed integer activation (bits).
    max_weight_bits:
        Width of a weight code on the weight stream (bits); every built datatype's code must fit.
    group_size:
        Weights sharing one datatype and scale; a multiple of ``lanes``.
    scale_bits:
        Width of the unsigned per-group integer scale (bits); the dequantiser takes one cycle per scale bit.
    acc_bits:
        Width of the partial sum and result registers (bits, two's complement, wrapping).
    datatypes:
        Datatypes the unit decodes, a subset of :data:`BITSERIAL_DATATYPES`.
    """

    lanes: int
    act_bits: int
    max_weight_bits: int
    group_size: int
    scale_bits: int
    acc_bits: int
    datatypes: tuple[str, ...]

    def __post_init__(self) -> None:
        _int_range("lanes", self.lanes, 1, 256)
        _int_range("act_bits", self.act_bits, 2, 16)
        _int_range("max_weight_bits", self.max_weight_bits, 3, 8)
        _int_range("group_size", self.group_size, 1, 4096)
        _require(self.group_size % self.lanes == 0, "group_size", self.group_size,
                 f"must be a multiple of lanes ({self.lanes})")
        _int_range("scale_bits", self.scale_bits, 1, 16)
        _int_range("acc_bits", self.acc_bits, 16, 64)
        _require(len(self.datatypes) > 0, "datatypes", list(self.datatypes), "must name at least one datatype")
        for dt in self.datatypes:
            _require(dt in BITSERIAL_DATATYPES, "datatypes", dt, f"must be one of {', '.join(BITSERIAL_DATATYPES)}")
        _require(len(set(self.datatypes)) == len(self.datatypes), "datatypes", list(self.datatypes),
                 "must not repeat a datatype")
        from .datatypes import DATATYPES  # datatypes imports nothing from here

        for dt in self.datatypes:
            _require(DATATYPES[dt].code_bits <= self.max_weight_bits, "datatypes", dt,
                     f"needs {DATATYPES[dt].code_bits}-bit codes but max_weight_bits is {self.max_weight_bits}")
        worst = self.group_size * (1 << (self.act_bits - 1)) * max(DATATYPES[d].max_abs for d in self.datatypes)
        _require(worst < (1 << (self.acc_bits - 1)), "acc_bits", self.acc_bits,
                 f"a group's partial sum can reach {worst}; acc_bits must hold it (at least "
                 f"{worst.bit_length() + 1})")

    @property
    def beats_per_group(self) -> int:
        """Weight/activation beats in one group."""
        return self.group_size // self.lanes

    @property
    def dtype_bits(self) -> int:
        """Width of the datatype field on the weight stream (bits)."""
        return max(1, (len(BITSERIAL_DATATYPES) - 1).bit_length())

    @property
    def dtype_codes(self) -> dict[str, int]:
        """Datatype name -> code on the weight stream."""
        return {dt: BITSERIAL_DATATYPES.index(dt) for dt in self.datatypes}

    @property
    def max_terms(self) -> int:
        """Most signed terms (cycles per beat) of any built datatype."""
        from .datatypes import DATATYPES

        return max(DATATYPES[d].terms for d in self.datatypes)

    @property
    def max_shift(self) -> int:
        """Largest term shift of any built datatype (bits): the MAC stage's shifter spans ``0 .. max_shift``."""
        from .datatypes import DATATYPES

        return max(t.shift for d in self.datatypes for terms in DATATYPES[d].term_table for t in terms)

    def cycles_per_group(self, dtype: str) -> int:
        """MAC cycles for one group of ``dtype`` weights (beats x terms), before any dequantiser stall."""
        from .datatypes import DATATYPES

        return self.beats_per_group * DATATYPES[dtype].terms

    @property
    def peak_macs_per_cycle(self) -> float:
        """MACs per cycle at the fastest built datatype."""
        from .datatypes import DATATYPES

        return self.lanes / min(DATATYPES[d].terms for d in self.datatypes)


@dataclass(frozen=True)
class PimTiming:
    """DRAM timing of a PIM channel, in cycles of the device clock (``tck_ns``).

    Names follow Ramulator 2 (``nRCD`` = tRCD in cycles, ...). ``nRCD_MAC`` is the activate-to-MAC delay, ``nCCD_AB``
    the pacing of consecutive all-bank MACs, ``faw_all_bank`` whether tFAW counts an all-bank activate.
    """

    tck_ns: float
    nBL: int
    nCL: int
    nCWL: int
    nRCD: int
    nRCDWR: int
    nRCD_MAC: int
    nRP: int
    nRAS: int
    nRC: int
    nWR: int
    nRTP: int
    nCCDS: int
    nCCDL: int
    nCCD_AB: int
    nRRDS: int
    nRRDL: int
    nFAW: int
    nRFC: int
    nREFI: int
    faw_all_bank: bool

    def __post_init__(self) -> None:
        _require(self.tck_ns > 0, "tck_ns", self.tck_ns, "must be positive (ns)")
        for f in dataclasses.fields(self):
            if f.name.startswith("n"):
                _int_range(f.name, getattr(self, f.name), 1, 1 << 20)
        # tRC is nominally tRAS + tRP, but published presets round it (AttAcc's HBM3: 63 < 45 + 19).
        _require(self.nRC >= self.nRAS, "nRC", self.nRC, f"must be at least nRAS = {self.nRAS}")
        _require(self.nCCDL >= self.nCCDS, "nCCDL", self.nCCDL, f"must be at least nCCDS = {self.nCCDS}")
        _require(self.nRRDL >= self.nRRDS, "nRRDL", self.nRRDL, f"must be at least nRRDS = {self.nRRDS}")
        _require(self.nREFI > self.nRFC, "nREFI", self.nREFI, f"must exceed nRFC = {self.nRFC}")

    @property
    def clock_mhz(self) -> float:
        return 1e3 / self.tck_ns

    @property
    def write_recovery(self) -> int:
        """Cycles from a WR to a PRE of its bank: write latency, burst and write recovery (``nCWL + nBL + nWR``,
        as AiM's simulator counts it)."""
        return self.nCWL + self.nBL + self.nWR

    @property
    def rd_latency(self) -> int:
        """Cycles from an RD to its data on the read port (``nCL``)."""
        return self.nCL

    @property
    def rdmac_latency(self) -> int:
        """Cycles from an RDMAC to its data on the read port (``nBL``: the MAC register is read out in one burst)."""
        return self.nBL


@dataclass(frozen=True)
class PimConfig:
    """PIM channels of DRAM banks that compute.

    Parameters
    ----------
    channels, banks, bank_groups:
        Channels of the device; banks per channel; bank groups per channel (banks divide evenly).
    rows:
        Rows per bank.
    row_bytes:
        Bytes per row (the row buffer).
    column_bits:
        Bits moved by one column access (RD/WR/MAC burst).
    mac_lanes:
        Multiply-accumulate lanes per bank, all of its MAC unit (:class:`BankUnit`): for ``lane: bitserial``
        ``mac_lanes / bitserial.lanes`` bit-serial units; a MAC consumes one column of packed weights.
    lane:
        ``"bitserial"`` (bit-serial units, mixed datatypes per group) or ``"int8"`` (bit-parallel int8 lanes).
    global_buffer_bytes:
        Bytes of the channel's global buffer holding the input vector slice.
    timing:
        DRAM timing (:class:`PimTiming`).
    """

    channels: int
    banks: int
    bank_groups: int
    rows: int
    row_bytes: int
    column_bits: int
    mac_lanes: int
    lane: str
    global_buffer_bytes: int
    timing: PimTiming

    def __post_init__(self) -> None:
        _int_range("channels", self.channels, 1, 1024)
        _int_range("banks", self.banks, 1, 256)
        _int_range("bank_groups", self.bank_groups, 1, 64)
        _require(self.banks % self.bank_groups == 0, "banks", self.banks,
                 f"must be a multiple of bank_groups ({self.bank_groups})")
        _require(_pow2(self.rows), "rows", self.rows, "must be a power of two")
        _require(_pow2(self.row_bytes), "row_bytes", self.row_bytes, "must be a power of two")
        _require(_pow2(self.column_bits) and self.column_bits >= 8, "column_bits", self.column_bits,
                 "must be a power of two of at least 8")
        _require(self.row_bytes * 8 >= self.column_bits, "row_bytes", self.row_bytes,
                 f"a row must hold at least one {self.column_bits}-bit column")
        _int_range("mac_lanes", self.mac_lanes, 1, 1024)
        _require(self.lane in ("bitserial", "int8"), "lane", self.lane, "must be 'bitserial' or 'int8'")
        _require(self.global_buffer_bytes * 8 >= self.column_bits, "global_buffer_bytes", self.global_buffer_bytes,
                 f"must hold at least one {self.column_bits}-bit column")

    @property
    def columns(self) -> int:
        """Columns per row."""
        return self.row_bytes * 8 // self.column_bits

    @property
    def banks_per_group(self) -> int:
        return self.banks // self.bank_groups

    @property
    def column_bytes(self) -> int:
        """Bytes moved by one column access."""
        return self.column_bits // 8

    def weights_per_column(self, code_bits: float) -> int:
        """Weights of ``code_bits`` bits (the mapper's average code width) that one DRAM column holds, packed at
        their storage width (:func:`storage_bits` of the next whole width: 4-bit and 3-bit codes 4 bits; int8 lanes
        8 bits), as :meth:`BankUnit.weights_per_column` of that format. Data columns only: a row's metadata columns
        and granule padding are in :meth:`DeviceConfig.bytes_per_weight`."""
        bits = 8 if self.lane == "int8" else storage_bits(math.ceil(code_bits))
        return self.column_bits // bits

    def bytes_per_weight(self, code_bits: float) -> float:
        """DRAM bytes of one weight of ``code_bits`` bits in a data column (:meth:`weights_per_column`; group
        metadata not included)."""
        return self.column_bytes / self.weights_per_column(code_bits)

    @property
    def gb_columns(self) -> int:
        """Column-sized words in the global buffer."""
        return self.global_buffer_bytes * 8 // self.column_bits

    @property
    def row_address_bits(self) -> int:
        return max(1, (self.rows - 1).bit_length())

    @property
    def column_address_bits(self) -> int:
        return max(1, (self.columns - 1).bit_length())

    @property
    def bank_address_bits(self) -> int:
        return max(1, (self.banks - 1).bit_length())

    @property
    def channel_address_bits(self) -> int:
        return max(1, (self.channels - 1).bit_length())

    @property
    def capacity_bytes(self) -> int:
        return self.channels * self.banks * self.rows * self.row_bytes

    @property
    def internal_bandwidth_bytes_per_cycle(self) -> float:
        """The bank-bandwidth bound: bytes the banks' MAC units read per cycle, every bank of every channel reading
        one column every ``nCCD_AB`` cycles."""
        return self.channels * self.banks * self.column_bits / 8 / self.timing.nCCD_AB

    @property
    def internal_bandwidth_bytes_per_s(self) -> float:
        """Bytes the banks' MAC units read per second, all banks busy (:attr:`internal_bandwidth_bytes_per_cycle`)."""
        return self.internal_bandwidth_bytes_per_cycle * self.timing.clock_mhz * 1e6

    @property
    def external_bandwidth_bytes_per_s(self) -> float:
        """Bytes per second over the channels' data buses (one column every ``nCCDS`` per channel)."""
        per_cycle = self.channels * self.column_bits / 8 / self.timing.nCCDS
        return per_cycle * self.timing.clock_mhz * 1e6


def _memo(fn: Any) -> Any:
    """Cache a derived value of a frozen config object per argument (the object's fields never change)."""
    name = fn.__name__

    def wrapper(self: Any, *args: Any) -> Any:
        memo = self.__dict__.setdefault("_memo", {})
        key = (name, *args)
        if key not in memo:
            memo[key] = fn(self, *args)
        return memo[key]

    wrapper.__name__, wrapper.__doc__, wrapper.__wrapped__ = name, fn.__doc__, fn
    return wrapper


def storage_bits(code_bits: int) -> int:
    """Bits a weight code of ``code_bits`` takes in a DRAM column: the smallest power of two that holds it (8 -> 8,
    4 -> 4, 3 -> 4: 3-bit codes are padded to 4 bits, so that every column holds whole beats; docs/pim.md)."""
    return 1 << max(0, code_bits - 1).bit_length()


@dataclass(frozen=True)
class BankUnit:
    """The MAC unit of one PIM bank and the column layout it reads (docs/pim.md, "Data layout").

    Bit-serial banks (``pim.lane == "bitserial"``) hold ``units = mac_lanes / bitserial.lanes`` bit-serial units
    (:class:`BitSerialConfig`, each ``bitserial.lanes`` lanes wide). A bank reads its columns in a *format*: the
    storage width of its weight codes (:func:`storage_bits`; the bank's format register, set by CFR). A column of
    format ``f`` holds ``column_bits / f`` codes, cut into *beats* of ``bitserial.lanes`` codes; beat ``j`` goes to
    unit ``j mod active_units(f)``, so a unit takes ``unit_beats(f)`` beats per column and a column keeps the bank
    busy ``cycles_per_column(f)`` cycles. The first ``metadata_columns(f)`` columns of every row hold the datatype
    code and scale of each group that starts in the row (``entry_bits`` each); groups never cross a row: a row holds
    ``granules_per_row(f)`` *granules* of ``granule_columns(f)`` columns, each a whole number of groups of every
    active unit.

    Bit-parallel banks (``lane == "int8"``) hold ``mac_lanes`` int8 multipliers; a column holds ``column_bits / 8``
    int8 weights and takes ``column_bits / 8 / mac_lanes`` cycles; no metadata.

    Parameters
    ----------
    pim:
        The channel's :class:`PimConfig`.
    bitserial:
        The device's :class:`BitSerialConfig` for ``lane == "bitserial"`` (ignored, and may be None, for int8
        lanes).
    """

    pim: PimConfig
    bitserial: Union[BitSerialConfig, None]

    def __post_init__(self) -> None:
        p = self.pim
        if p.lane != "bitserial":
            object.__setattr__(self, "bitserial", None)
            _require(p.column_bits // 8 % p.mac_lanes == 0, "pim.mac_lanes", p.mac_lanes,
                     f"int8 lanes must divide the {p.column_bits // 8} int8 weights of a {p.column_bits}-bit column")
            return
        bs = self.bitserial
        if not isinstance(bs, BitSerialConfig):
            raise ConfigError("pim.lane = 'bitserial' needs the device's bitserial section (BitSerialConfig)")
        _require(bs.act_bits == 8, "bitserial.act_bits", bs.act_bits,
                 "must be 8 for a bit-serial bank: the global buffer holds int8 activations")
        _require(_pow2(bs.lanes), "bitserial.lanes", bs.lanes, "must be a power of two (beats tile a column)")
        _require(_pow2(bs.beats_per_group), "bitserial.group_size", bs.group_size,
                 f"must be a power-of-two multiple of bitserial.lanes ({bs.lanes}) in a bank: groups start at "
                 f"multiples of their beats")
        _require(p.mac_lanes % bs.lanes == 0 and _pow2(p.mac_lanes // bs.lanes), "pim.mac_lanes", p.mac_lanes,
                 f"must be a power-of-two multiple of bitserial.lanes ({bs.lanes}): a bank's MAC unit is "
                 f"mac_lanes / bitserial.lanes bit-serial units")
        for f in self.formats:
            _require(p.column_bits % (f * bs.lanes) == 0, "bitserial.lanes", bs.lanes,
                     f"a {p.column_bits}-bit column must hold whole beats of {bs.lanes} {f}-bit codes (at most "
                     f"{p.column_bits // f} lanes)")
        # a unit's groups must take at least scale_bits + 1 cycles (two terms per beat at the least), so that its
        # bit-serial dequantiser is done before the next group ends: the bank never waits for its units
        _require(2 * bs.beats_per_group >= bs.scale_bits + 1, "bitserial.group_size", bs.group_size,
                 f"a group of {bs.beats_per_group} beats takes as little as {2 * bs.beats_per_group} cycles, less "
                 f"than the dequantiser's scale_bits + 1 = {bs.scale_bits + 1}; use groups of at least "
                 f"{-(-(bs.scale_bits + 1) // 2) * bs.lanes} weights or fewer lanes")
        for f in self.formats:
            if self._metadata_columns(f) is None:
                raise ConfigError(
                    f"pim.row_bytes = {p.row_bytes}: a row of {p.columns} columns cannot hold one granule of "
                    f"{self.granule_columns(f)} columns of {f}-bit weights plus its metadata; use longer rows or "
                    f"shorter groups")

    # ---- the lanes
    @property
    @_memo
    def units(self) -> int:
        """Bit-serial units per bank (0 for int8 lanes)."""
        return self.pim.mac_lanes // self.bitserial.lanes if self.bitserial else 0

    @property
    @_memo
    def unit_lanes(self) -> int:
        """Lanes of one bit-serial unit (``bitserial.lanes``; int8 lanes: ``mac_lanes``)."""
        return self.bitserial.lanes if self.bitserial else self.pim.mac_lanes

    @property
    @_memo
    def mac_registers(self) -> int:
        """Accumulators a bank's MAC register holds (an RDMAC beat: this many 32-bit words): one per bit-serial unit,
        or one per int8 lane."""
        return self.units if self.bitserial else self.pim.mac_lanes

    @property
    @_memo
    def formats(self) -> tuple[int, ...]:
        """Column formats (code storage bits) the bank reads, ascending."""
        if self.bitserial is None:
            return (8,)
        from .datatypes import DATATYPES

        return tuple(sorted({storage_bits(DATATYPES[d].code_bits) for d in self.bitserial.datatypes}))

    @property
    @_memo
    def reset_format(self) -> int:
        """The format register's value after reset: the format of the first built datatype."""
        return self.format_of(self.bitserial.datatypes[0]) if self.bitserial else 8

    @_memo
    def format_of(self, dtype: str) -> int:
        """The column format a datatype is stored in (its code's storage bits)."""
        from .datatypes import DATATYPES

        if self.bitserial is None:
            if dtype != "int8":
                raise ConfigError(f"datatype {dtype!r}: a bank of int8 lanes holds int8 weights only")
            return 8
        if dtype not in self.bitserial.datatypes:
            raise ConfigError(f"datatype {dtype!r} is not built into the bank's bit-serial units (built: "
                              f"{', '.join(self.bitserial.datatypes)})")
        return storage_bits(DATATYPES[dtype].code_bits)

    def _check_format(self, fmt: int) -> None:
        if fmt not in self.formats:
            raise ConfigError(f"column format {fmt!r}: the bank reads {', '.join(map(str, self.formats))}-bit "
                              f"columns")

    @_memo
    def datatypes_of(self, fmt: int) -> tuple[str, ...]:
        """Built datatypes a column of format ``fmt`` can hold (codes of at most ``fmt`` bits), in built order."""
        from .datatypes import DATATYPES

        self._check_format(fmt)
        return tuple(d for d in self.bitserial.datatypes if DATATYPES[d].code_bits <= fmt)

    @_memo
    def format_terms(self, fmt: int) -> int:
        """Cycles a unit spends on one beat of format ``fmt``: the most terms of its datatypes."""
        from .datatypes import DATATYPES

        return max(DATATYPES[d].terms for d in self.datatypes_of(fmt))

    @_memo
    def weights_per_column(self, fmt: int) -> int:
        """Weight codes in one column of format ``fmt``."""
        self._check_format(fmt)
        return self.pim.column_bits // fmt

    @_memo
    def beats_per_column(self, fmt: int) -> int:
        """Beats (``unit_lanes`` codes each) in one column."""
        return self.weights_per_column(fmt) // self.unit_lanes

    @_memo
    def active_units(self, fmt: int) -> int:
        """Units that get beats from a column of format ``fmt`` (the others idle)."""
        return min(self.beats_per_column(fmt), self.units) if self.bitserial else 1

    @_memo
    def unit_beats(self, fmt: int) -> int:
        """Beats each active unit takes from one column."""
        return self.beats_per_column(fmt) // self.active_units(fmt)

    @_memo
    def cycles_per_column(self, fmt: int) -> int:
        """Cycles one MAC column keeps the bank's MAC unit busy (the MAC_BUSY rule's ``terms``): a unit's beats
        times the format's terms (bit-serial), or one cycle per ``mac_lanes`` int8 weights."""
        if self.bitserial is None:
            return self.beats_per_column(fmt)
        return self.unit_beats(fmt) * self.format_terms(fmt)

    def gb_columns_per_mac(self, fmt: int) -> int:
        """Global-buffer columns (int8 activations, ``column_bits / 8`` each) one MAC column reads."""
        return 8 // fmt

    @property
    @_memo
    def max_pace(self) -> int:
        """The most cycles a column takes in any format."""
        return max(self.cycles_per_column(f) for f in self.formats)

    @property
    @_memo
    def drain(self) -> int:
        """Cycles from a MAC's issue until its results are in the bank's MAC register, whatever the format (the
        MAC_DRAIN rule's ``drain``): the column's beats, then the dequantiser's ``scale_bits`` cycles, its result
        register, the MAC register (bit-serial); the column's cycles (int8 lanes)."""
        if self.bitserial is None:
            return self.max_pace
        return self.max_pace + self.bitserial.scale_bits + 2

    # ---- metadata and granules
    @property
    @_memo
    def entry_bits(self) -> int:
        """Bits of one group's metadata entry: the datatype code (``dtype_bits``), then the scale."""
        return self.bitserial.dtype_bits + self.bitserial.scale_bits if self.bitserial else 0

    @_memo
    def granule_columns(self, fmt: int) -> int:
        """Columns of a granule: the fewest whole columns holding whole groups of every active unit."""
        if self.bitserial is None:
            return 1
        n = self.unit_beats(fmt)
        return math.lcm(self.bitserial.beats_per_group, n) // n

    @_memo
    def groups_per_granule(self, fmt: int) -> int:
        """Groups in one granule (of all active units)."""
        if self.bitserial is None:
            return 0
        beats = self.granule_columns(fmt) * self.unit_beats(fmt)
        return self.active_units(fmt) * beats // self.bitserial.beats_per_group

    @_memo
    def _metadata_columns(self, fmt: int) -> int | None:
        if self.bitserial is None:
            return 0
        c = self.pim.columns
        for m in range(1, c):
            granules = (c - m) // self.granule_columns(fmt)
            if granules and granules * self.groups_per_granule(fmt) * self.entry_bits <= m * self.pim.column_bits:
                return m
        return None

    @_memo
    def metadata_columns(self, fmt: int) -> int:
        """Metadata columns at the start of every row of format ``fmt`` (the fewest that hold an entry for every
        group of the row)."""
        self._check_format(fmt)
        m = self._metadata_columns(fmt)
        assert m is not None   # checked on construction
        return m

    @property
    @_memo
    def max_metadata_columns(self) -> int:
        """Columns of the bank's metadata register (the most metadata columns of any format)."""
        return max(self.metadata_columns(f) for f in self.formats)

    @_memo
    def granules_per_row(self, fmt: int) -> int:
        """Whole granules after a row's metadata columns."""
        return (self.pim.columns - self.metadata_columns(fmt)) // self.granule_columns(fmt)

    @_memo
    def data_columns(self, fmt: int) -> int:
        """Columns of a row that hold weights (its granules; the columns after the last granule stay empty)."""
        return self.granules_per_row(fmt) * self.granule_columns(fmt)

    @_memo
    def weights_per_row(self, fmt: int) -> int:
        return self.data_columns(fmt) * self.weights_per_column(fmt)

    @_memo
    def bytes_per_weight(self, fmt: int) -> float:
        """DRAM bytes per weight of format ``fmt``: a row's bytes over the weights it holds (metadata and the
        columns after the last granule included)."""
        return self.pim.row_bytes / self.weights_per_row(fmt)

    @_memo
    def read_bytes_per_weight(self, fmt: int) -> float:
        """Bytes the MAC units read per weight when they stream whole rows: data and metadata columns."""
        cols = self.data_columns(fmt) + self.metadata_columns(fmt)
        return cols * self.pim.column_bytes / self.weights_per_row(fmt)

    @_memo
    def peak_macs_per_cycle(self, fmt: int) -> float:
        """MACs per cycle of one bank streaming whole rows (metadata columns included) at one column per
        ``max(nCCD_AB, cycles_per_column)`` cycles, activates left out."""
        cols = self.data_columns(fmt) + self.metadata_columns(fmt)
        pace = max(self.pim.timing.nCCD_AB, self.cycles_per_column(fmt))
        return self.weights_per_row(fmt) / (cols * pace)


@dataclass(frozen=True)
class AttentionConfig:
    """A spatial attention array (after FuseMax): a ``rows`` x ``cols`` 2D PE array plus a 1D array.

    Parameters
    ----------
    rows, cols:
        2D array size (keys of a chunk x queries).
    head_dim:
        Largest head dimension the buffers hold.
    data_bits:
        Width of Q/K/V elements (signed fixed point, bits).
    exp_table_bits:
        log2 of the entries of the 2^x fraction table.
    clock_mhz:
        Clock of the array (MHz).
    """

    rows: int
    cols: int
    head_dim: int
    data_bits: int
    exp_table_bits: int
    clock_mhz: float

    def __post_init__(self) -> None:
        _int_range("rows", self.rows, 1, 1024)
        _int_range("cols", self.cols, 1, 1024)
        _int_range("head_dim", self.head_dim, 1, 1024)
        _int_range("data_bits", self.data_bits, 2, 16)
        _int_range("exp_table_bits", self.exp_table_bits, 1, 12)
        _require(self.clock_mhz > 0, "clock_mhz", self.clock_mhz, "must be positive (MHz)")

    @property
    def peak_macs_per_s(self) -> float:
        return self.gemm.peak_macs_per_cycle * self.clock_mhz * 1e6

    @property
    def gemm(self) -> "GemmConfig":
        """The 2D PE array run as a systolic GEMM engine (the same PEs, data width and clock)."""
        return GemmConfig(rows=self.rows, cols=self.cols, data_bits=self.data_bits, clock_mhz=self.clock_mhz)


#: Accumulator guard bits of a GEMM PE above a product's ``2 * data_bits``: sums of up to ``2**GEMM_ACC_GUARD``
#: products never wrap; longer ones wrap modulo ``2**acc_bits`` (two's complement), in the golden model too.
GEMM_ACC_GUARD = 16


@dataclass(frozen=True)
class GemmConfig:
    """A ``rows`` x ``cols`` systolic GEMM array (``accel.rtl.gemm``: output- and weight-stationary engines).

    On a device it is the attention array's 2D PE array (:attr:`AttentionConfig.gemm`, :attr:`DeviceConfig.gemm`).

    Parameters
    ----------
    rows, cols:
        Array size (PEs).
    data_bits:
        Width of the signed operands (bits).
    clock_mhz:
        Clock of the array (MHz); None for an array given by its size alone (``accel array gemm --rows R --cols
        C``), whose timing is then known in cycles only.
    """

    rows: int
    cols: int
    data_bits: int
    clock_mhz: Union[float, None] = None

    def __post_init__(self) -> None:
        _int_range("rows", self.rows, 1, 1024)
        _int_range("cols", self.cols, 1, 1024)
        _int_range("data_bits", self.data_bits, 2, 16)
        _require(self.clock_mhz is None or self.clock_mhz > 0, "clock_mhz", self.clock_mhz,
                 "must be positive (MHz) or None")

    @property
    def acc_bits(self) -> int:
        """Width of a PE's accumulator and of an output element (signed bits)."""
        return 2 * self.data_bits + GEMM_ACC_GUARD

    @property
    def peak_macs_per_cycle(self) -> int:
        """Every PE doing one MAC."""
        return self.rows * self.cols


@dataclass(frozen=True)
class VectorConfig:
    """The vector unit (norms, activations, residual adds, decode softmax, rotary embedding, reductions, routing).

    Every op runs as one or more *passes* over its rows (:mod:`accel.interfaces.vector` lists them per op); a pass
    issues one beat of ``lanes`` elements per cycle into a pipeline whose depth is the sum of the latencies below.

    Parameters
    ----------
    lanes:
        Elements per beat (SIMD lanes).
    clock_mhz:
        Clock of the unit (MHz).
    element_bits:
        Width of one element in the buffer (bits).
    buffer_bytes:
        Bytes of the unit's buffer (a whole number of lines of ``lanes`` elements).
    sram_latency:
        Cycles from a buffer read to its data at the datapath.
    add_latency, mul_latency:
        Pipeline depth of an adder/comparator and of a multiplier (cycles).
    exp_latency:
        Pipeline depth of the exponential unit (cycles).
    activation_latency:
        Pipeline depth of GELU/SiLU (table look-up, interpolation and the final multiply; cycles).
    recip_latency:
        Cycles of the scalar reciprocal / reciprocal square root of a row's statistic (norms, softmax).
    """

    lanes: int
    clock_mhz: float
    element_bits: int
    buffer_bytes: int
    sram_latency: int
    add_latency: int
    mul_latency: int
    exp_latency: int
    activation_latency: int
    recip_latency: int

    def __post_init__(self) -> None:
        _int_range("lanes", self.lanes, 1, 4096)
        _require(self.clock_mhz > 0, "clock_mhz", self.clock_mhz, "must be positive (MHz)")
        _require(self.element_bits in (8, 16, 32), "element_bits", self.element_bits, "must be 8, 16 or 32")
        _require(self.lanes * self.element_bits % 8 == 0, "lanes", self.lanes,
                 f"a line of lanes x element_bits ({self.lanes} x {self.element_bits}) must be whole bytes")
        _require(self.buffer_bytes >= self.line_bytes and self.buffer_bytes % self.line_bytes == 0, "buffer_bytes",
                 self.buffer_bytes, f"must be a positive multiple of a line ({self.line_bytes} bytes: lanes x "
                                    f"element_bits / 8)")
        for name in ("sram_latency", "add_latency", "mul_latency", "exp_latency", "activation_latency",
                     "recip_latency"):
            _int_range(name, getattr(self, name), 1, 1 << 16)

    @property
    def line_bytes(self) -> int:
        """Bytes of one buffer line (one beat: ``lanes`` elements)."""
        return self.lanes * self.element_bits // 8

    @property
    def buffer_lines(self) -> int:
        """Lines in the buffer (the address range of VECTOR ``src``, ``src2``, ``dst``)."""
        return self.buffer_bytes // self.line_bytes

    @property
    def reduce_latency(self) -> int:
        """Depth of a reduction of one beat into a row's running value: an adder tree over the lanes, then the
        accumulating adder (cycles)."""
        return self.add_latency * (max(0, (self.lanes - 1).bit_length()) + 1)

    @property
    def peak_ops_per_s(self) -> float:
        return self.lanes * self.clock_mhz * 1e6


@dataclass(frozen=True)
class LinkConfig:
    """The link that moves data between units: PIM channel pins, the vector unit, the attention array, the host.

    A transfer of ``b`` bits occupies the link for ``ceil(b / width_bits)`` cycles and arrives ``latency`` cycles
    after its last beat left (:mod:`accel.interfaces.link`); transfers queue in program order.

    Parameters
    ----------
    width_bits:
        Bits moved per link cycle.
    clock_mhz:
        Clock of the link (MHz).
    latency:
        Cycles (of the link clock) from a beat leaving to its arrival.
    energy_pj_per_bit:
        Energy of moving one bit (pJ).
    broadcast:
        A transfer to every channel (endpoint ``all``) is sent once; without broadcast it is sent once per channel.
    """

    width_bits: int
    clock_mhz: float
    latency: int
    energy_pj_per_bit: float
    broadcast: bool

    def __post_init__(self) -> None:
        _int_range("width_bits", self.width_bits, 1, 1 << 16)
        _require(self.clock_mhz > 0, "clock_mhz", self.clock_mhz, "must be positive (MHz)")
        _int_range("latency", self.latency, 0, 1 << 20)
        _require(self.energy_pj_per_bit >= 0, "energy_pj_per_bit", self.energy_pj_per_bit,
                 "must not be negative (pJ)")

    @property
    def bytes_per_s(self) -> float:
        return self.width_bits / 8 * self.clock_mhz * 1e6


@dataclass(frozen=True)
class InterconnectConfig:
    """The interconnect joining identical devices of a system (``accel map --devices N``): each device has one port
    (the ``dK.net`` stream of a program) that sends transfers to the other devices in program order.

    A transfer of ``b`` bits occupies the sending port for ``ceil(b / width_bits)`` cycles and arrives ``latency``
    cycles after its last beat left (the same closed form as the link's, :mod:`accel.interfaces.link`).

    Parameters
    ----------
    width_bits:
        Bits a port sends per cycle (one direction).
    clock_mhz:
        Clock of the port (MHz).
    latency:
        Cycles (of the port's clock) from a beat leaving to its arrival at the other device (ports, wire, switch).
    energy_pj_per_bit:
        Energy of moving one bit between devices (pJ).
    """

    width_bits: int
    clock_mhz: float
    latency: int
    energy_pj_per_bit: float

    def __post_init__(self) -> None:
        self.link   # the port's figures obey the link's rules (LinkConfig checks them)

    @property
    def bytes_per_s(self) -> float:
        return self.link.bytes_per_s

    @property
    def link(self) -> LinkConfig:
        """The port as a point-to-point :class:`LinkConfig` (no broadcast), for the link's closed form and model."""
        return LinkConfig(self.width_bits, self.clock_mhz, self.latency, self.energy_pj_per_bit, False)


@dataclass(frozen=True)
class EnergyConfig:
    """Energy per event and static power of a device: the numbers of the energy table (:mod:`accel.energy` turns
    event counts into joules with them; every preset states the source of each number beside it).

    Units: ``*_pj`` pJ per event, ``*_pj_per_bit`` pJ per bit moved or stored, ``*_mw`` mW. The energy of moving a
    bit over the link is the link's own (:attr:`LinkConfig.energy_pj_per_bit`), over the interconnect the
    interconnect's (:attr:`InterconnectConfig.energy_pj_per_bit`).

    Parameters
    ----------
    activate_pj_per_row_bit:
        A bank's activate and its precharge, per bit of the row (pJ/bit; x ``row_bytes * 8`` per activate).
    column_read_pj_per_bit, column_write_pj_per_bit:
        The cell array's part of a column read (RD, and the bank's read of a MAC column) and of a column write (WR),
        per bit of the column.
    column_io_pj_per_bit:
        Moving a column between a bank and the channel's pins inside the die (RD, WR, RDMAC), per bit.
    refresh_pj:
        One all-bank refresh (REF) of a channel.
    command_pj:
        One PIM command on the channel's command path (controller and command bus), run-length commands expanded.
    gb_read_pj_per_bit, gb_write_pj_per_bit:
        The channel's global buffer: a read (one per MAC column, broadcast to the banks) and a write (WRGB).
    mac_int8_pj:
        One int8 MAC of a bit-parallel lane (``pim.lane: int8``).
    mac_term_pj:
        One signed term of a bit-serial lane (``pim.lane: bitserial``; a MAC takes the datatype's terms).
    vector_add_pj, vector_mul_pj, vector_exp_pj, vector_activation_pj:
        One lane of the vector unit doing an add/compare, a multiply, an exponential, a GELU/SiLU.
    vector_recip_pj:
        One scalar reciprocal or reciprocal square root of a row's statistic (norms, softmax).
    vector_sram_read_pj_per_bit, vector_sram_write_pj_per_bit:
        The vector unit's buffer, per bit of a line read or written.
    array_mac_pj:
        One MAC of an attention-array PE (unused without an array).
    pim_background_mw:
        Background (standby) power of one PIM channel: DRAM periphery, global buffer leakage.
    vector_static_mw, array_static_mw:
        Static power of the vector unit and of the attention array (mW).
    device_static_mw:
        Static power of the rest of a device: controllers, sequencers, instruction buffers (mW).
    """

    activate_pj_per_row_bit: float
    column_read_pj_per_bit: float
    column_write_pj_per_bit: float
    column_io_pj_per_bit: float
    refresh_pj: float
    command_pj: float
    gb_read_pj_per_bit: float
    gb_write_pj_per_bit: float
    mac_int8_pj: float
    mac_term_pj: float
    vector_add_pj: float
    vector_mul_pj: float
    vector_exp_pj: float
    vector_activation_pj: float
    vector_recip_pj: float
    vector_sram_read_pj_per_bit: float
    vector_sram_write_pj_per_bit: float
    array_mac_pj: float
    pim_background_mw: float
    vector_static_mw: float
    array_static_mw: float
    device_static_mw: float

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            unit = "mW" if f.name.endswith("_mw") else "pJ/bit" if f.name.endswith("_per_bit") else "pJ"
            _require(getattr(self, f.name) >= 0, f.name, getattr(self, f.name), f"must not be negative ({unit})")


def _exact(value: float) -> Fraction:
    """A config number as the exact decimal it was written as (``83.333`` is 83333/1000, not the nearest double)."""
    from fractions import Fraction

    return Fraction(repr(float(value)))


@dataclass(frozen=True)
class Clocks:
    """Every unit clock as a whole number of *ticks* of one common time base, so that times of different units
    compare exactly (no floats). A cycle ``c`` of a unit with ``n`` ticks per cycle starts at tick ``c * n``.

    Members
    -------
    tick_ns:
        Length of a tick (ns, exact).
    pim, vector, link, array, net:
        Ticks per cycle of each unit (``array`` is 0 when the device has no attention array; ``net`` is the
        interconnect port's).
    sync:
        The device's sync latency in ticks.
    """

    tick_ns: Fraction
    pim: int
    vector: int
    link: int
    array: int
    sync: int
    net: int

    def of(self, kind: str) -> int:
        """Ticks per cycle of a unit kind (``pim``, ``vector``, ``link``, ``array``, ``net``)."""
        return getattr(self, kind)


@dataclass(frozen=True)
class DeviceConfig:
    """A whole device: PIM channels, the bit-serial unit they use, an attention array, a vector unit, the link
    between them, the interconnect that joins several such devices, and the energy table (:class:`EnergyConfig`).

    ``sync_latency``: cycles of the device (PIM) clock from an event becoming visible (a SIGNAL) to the first cycle
    a waiting stream may offer its next command (a WAIT).
    """

    name: str
    description: str
    bitserial: BitSerialConfig
    pim: PimConfig
    attention: Union[AttentionConfig, None]
    vector: VectorConfig
    link: LinkConfig
    interconnect: InterconnectConfig
    sync_latency: int
    energy: EnergyConfig

    def __post_init__(self) -> None:
        _require(bool(self.name) and self.name.replace("-", "").replace("_", "").isalnum(), "name", self.name,
                 "must be a non-empty identifier of letters, digits, '-' and '_'")
        _int_range("sync_latency", self.sync_latency, 0, 1 << 20)
        self.bank   # the bank's MAC unit must fit the columns and rows (checked on construction)

    @property
    @_memo
    def bank(self) -> BankUnit:
        """The MAC unit of every PIM bank and the column layout it reads (one object, so that its own derived
        values are computed once)."""
        return BankUnit(self.pim, self.bitserial if self.pim.lane == "bitserial" else None)

    # ---- what a weight datatype costs in the PIM banks (docs/pim.md, "Data layout"); the mapper reads these
    def weight_format(self, dtype: str) -> int:
        """Bits a ``dtype`` weight takes in a DRAM column (its code padded to a power of two: 8, 4; 3-bit codes 4)."""
        return self.bank.format_of(dtype)

    def weights_per_column(self, dtype: str) -> int:
        """``dtype`` weights in one DRAM column."""
        return self.bank.weights_per_column(self.weight_format(dtype))

    def weights_per_row(self, dtype: str) -> int:
        """``dtype`` weights in one DRAM row (after its metadata columns, in whole granules)."""
        return self.bank.weights_per_row(self.weight_format(dtype))

    def bytes_per_weight(self, dtype: str) -> float:
        """DRAM bytes per ``dtype`` weight: weight bits, the groups' metadata and the row's unused columns."""
        return self.bank.bytes_per_weight(self.weight_format(dtype))

    def read_bytes_per_weight(self, dtype: str) -> float:
        """Bytes the banks' MAC units read per ``dtype`` weight (weight and metadata columns)."""
        return self.bank.read_bytes_per_weight(self.weight_format(dtype))

    def weight_capacity(self, dtype: str) -> int:
        """``dtype`` weights all banks of the device hold."""
        p = self.pim
        return p.channels * p.banks * p.rows * self.weights_per_row(dtype)

    def mac_cycles_per_column(self, dtype: str) -> int:
        """Cycles a bank's MAC unit spends on one column of ``dtype`` weights (its MAC_BUSY pace)."""
        return self.bank.cycles_per_column(self.weight_format(dtype))

    def peak_macs_per_cycle(self, dtype: str | None = None) -> float:
        """MACs per cycle with every bank streaming whole rows of ``dtype`` weights (default: the fastest built
        datatype), metadata columns included, activates left out."""
        p, b = self.pim, self.bank
        fmts = b.formats if dtype is None else (self.weight_format(dtype),)
        return p.channels * p.banks * max(b.peak_macs_per_cycle(f) for f in fmts)

    def peak_macs_per_s(self, dtype: str | None = None) -> float:
        return self.peak_macs_per_cycle(dtype) * self.pim.timing.clock_mhz * 1e6

    def weight_bandwidth(self, dtype: str) -> float:
        """``dtype`` weights per second the banks can read at the bank-bandwidth bound (one column per nCCD_AB)."""
        return self.pim.internal_bandwidth_bytes_per_s / self.read_bytes_per_weight(dtype)

    @property
    def clocks(self) -> Clocks:
        """The units' clocks in ticks of a common base (see :class:`Clocks`)."""
        from fractions import Fraction

        periods = {"pim": _exact(self.pim.timing.tck_ns), "vector": 1000 / _exact(self.vector.clock_mhz),
                   "link": 1000 / _exact(self.link.clock_mhz), "net": 1000 / _exact(self.interconnect.clock_mhz)}
        if self.attention is not None:
            periods["array"] = 1000 / _exact(self.attention.clock_mhz)
        den = math.lcm(*(p.denominator for p in periods.values()))
        tick = Fraction(math.gcd(*(p.numerator * (den // p.denominator) for p in periods.values())), den)
        n = {k: int(p / tick) for k, p in periods.items()}
        return Clocks(tick, n["pim"], n["vector"], n["link"], n.get("array", 0), self.sync_latency * n["pim"],
                      n["net"])

    def mac_column_cycles(self, datatype: str) -> int:
        """Cycles between all-bank MAC columns of ``datatype`` weights when nothing else intervenes: the all-bank MAC
        pacing ``nCCD_AB``, or the bank's MAC units' pace on a column of the datatype's format if longer (the
        MAC_BUSY rule, :meth:`mac_cycles_per_column`)."""
        return max(self.pim.timing.nCCD_AB, self.mac_cycles_per_column(datatype))

    @property
    def mac_register_bytes(self) -> int:
        """Bytes of one bank's MAC register as RDMAC returns it: its accumulators (:attr:`BankUnit.mac_registers`),
        32 bits each (``accel.interfaces.pim.ACC_BITS``)."""
        return self.bank.mac_registers * 4

    @property
    def gemm(self) -> Union[GemmConfig, None]:
        """The attention array's PEs as a GEMM engine (None without an attention array)."""
        return None if self.attention is None else self.attention.gemm

    def key_figures(self) -> dict[str, Any]:
        """The figures ``accel devices`` lists."""
        p = self.pim
        return {
            "name": self.name,
            "description": self.description,
            "channels": p.channels,
            "banks_per_channel": p.banks,
            "mac_lanes_per_bank": p.mac_lanes,
            "lane": p.lane,
            "capacity_gib": p.capacity_bytes / 2**30,
            "clock_mhz": p.timing.clock_mhz,
            "pim_peak_tmacs": self.peak_macs_per_s() / 1e12,
            "bits_per_weight": {d: 8 * self.bytes_per_weight(d) for d in
                                (self.bitserial.datatypes if p.lane == "bitserial" else ("int8",))},
            "internal_bw_gbs": p.internal_bandwidth_bytes_per_s / 1e9,
            "external_bw_gbs": p.external_bandwidth_bytes_per_s / 1e9,
            "attention_array": None if self.attention is None else f"{self.attention.rows}x{self.attention.cols}",
            "bitserial_lanes": self.bitserial.lanes,
            "bitserial_group": self.bitserial.group_size,
        }


# --------------------------------------------------------------------------------------------------------------------
# Strict loading


#: A number PyYAML (YAML 1.1) reads as text: an exponent without a '.' or without a sign (``4e1``, ``4.0e1``).
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _yaml_float(text: str) -> str:
    """``text`` as YAML 1.1 reads a float: ``4e1`` -> ``4.0e+1``."""
    mant, _, exp = text.strip().lower().partition("e")
    if "." not in mant:
        mant += ".0"
    return f"{mant}e{exp if exp[0] in '+-' else '+' + exp}"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, key)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key} = {show(value)}: must be a list")
        (inner, _) = typing.get_args(tp)
        return tuple(_convert(inner, v, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {show(value)}: must be an integer")
        return value
    if tp is float:
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            raise ConfigError(f"{key} = {show(value)}: YAML reads this as text, not a number: write it with a '.' "
                              f"and a signed exponent ({_yaml_float(value)}) or in plain decimals")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or abs(value) > 1e300:
            raise ConfigError(f"{key} = {show(value)}: must be a finite number")
        return float(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {show(value)}: must be true or false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} = {show(value)}: must be a string")
        return value
    raise TypeError(f"unsupported config field type {_type_name(tp)}")  # a bug in this module, not user input


def _build(cls: type, data: Any, path: str) -> Any:
    where = path or "top level"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping of keys to values, not {show(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(f"{where}: unknown key {show(unknown[0])}; allowed keys are {', '.join(names)}")
    missing = [n for n in names if n not in data]
    if missing:
        raise ConfigError(f"{where}: missing key {missing[0]!r}; every key of {cls.__name__} must be given "
                          f"({', '.join(names)})")
    prefix = f"{path}." if path else ""
    kwargs = {n: _convert(hints[n], data[n], prefix + n) for n in names}
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{prefix}{e}") from None


def device_from_dict(data: Any) -> DeviceConfig:
    """Build a :class:`DeviceConfig` from plain data with the same strict rules as :func:`load_device`."""
    return _build(DeviceConfig, data, "")


def load_device(path: str | Path, shipped: bool = False) -> DeviceConfig:
    """Load a device description from a YAML file, strictly (:func:`accel.files.read_yaml`; errors name the file;
    ``shipped``: a preset file of accel's, as there)."""
    data = read_yaml(path, "device description", ConfigError, shipped)
    try:
        return device_from_dict(data)
    except ConfigError as e:
        raise at(e, str(path)) from None


def _preset_dir() -> Path:
    """The presets' folder, inside the package (a file path: accel is never imported from a zip; importlib.resources
    would cost the command's start-up tempfile, zipfile and their imports)."""
    return Path(__file__).parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in _preset_dir().iterdir() if p.name.endswith(".yaml"))


def _is_file(name: str) -> bool:
    try:
        return Path(name).is_file()
    except (OSError, ValueError):  # a name no file can have (a NUL byte, too long)
        return False


def load_preset(name: str) -> DeviceConfig:
    """Load a preset by name (``accel devices`` lists them); a path to a YAML file also works."""
    if name.endswith((".yaml", ".yml")) or "/" in name or _is_file(name):
        return load_device(name)
    names = preset_names()
    if name not in names:
        import difflib

        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown preset {show(name)}{hint}; presets are {', '.join(names)}; "
                          f"or give a path to a YAML file")
    dev = load_device(_preset_dir() / f"{name}.yaml", shipped=True)
    if dev.name != name:
        raise ConfigError(f"preset file {name}.yaml: name = {dev.name!r}: must equal the file name {name!r}")
    return dev

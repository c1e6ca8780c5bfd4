"""Per-cycle models of the PIM bank and channel (``PimBank``, ``PimChannel``), equal to ``rtl/pim.py``.

The channel takes 64-bit command words (``accel/isa.py``, family PIM) on its ``cmd`` stream, data words for WR/WRGB on
``wdata``, and returns read data (RD columns, RDMAC registers) on ``rdata``. Every DRAM timing rule is a countdown
counter, as in the RTL: an issue sets the counter to the rule's distance, every cycle lowers it by one, and a command
is legal when the counters of the rules it must respect are zero. The value of a counter is the number of cycles
missing. ``emulator/engine.py`` computes the same schedule from timestamps, in closed form; tests prove both equal.

Cycle behaviour (see ``docs/pim.md``)
-------------------------------------
* A command word is taken from ``cmd`` into the *head* register when the head is free (or frees this cycle); it issues
  from the head, so the earliest issue is the cycle after the transfer. One command element issues per cycle at most.
* Run-length commands (``count`` > 1) issue element by element, each at its earliest legal cycle.
* ``strict`` = 0 (wait mode): the head waits until its element is legal. ``strict`` = 1: the first element of a command
  must be legal in its first cycle in the head; otherwise the channel raises ``error`` with the rule's code
  (:class:`PimRule`) in that cycle and drops the command. Illegal commands (RD to a closed bank, ...) are errors in both
  modes. ``error`` stays high afterwards; ``error_code`` shows the latest error.
* WR/WRGB elements take one ``wdata`` word each, in their issue cycle (an element waits for its word).
* RD data appears on ``rdata`` ``nCL`` cycles after the issue, RDMAC data ``nBL`` cycles after; a read may not put its
  data on the bus less than ``nBL`` cycles after the previous read's data (rule BUS).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

from accel.config import BITSERIAL_DATATYPES, BitSerialConfig, PimConfig, PimTiming
from accel.errors import StimulusError, TimingError
from accel.isa import TABLES, Family, PimOp
from accel.numerics import DATATYPES

__all__ = [
    "PimRule", "RULE_PARAM", "PimTimingError", "PimIllegalError", "Timing", "CFR_DTYPE", "CFR_SCALE",
    "CFR_CHANNEL_REGS", "PimBank", "PimChannel", "MacNumerics", "pack_slots", "unpack_slots", "ACC_BITS",
    "rdata_bits", "ERROR_CODE_BITS", "ILLEGAL_RULES",
]

#: Width of a MAC lane's accumulator (bits); the bit-serial lanes use the device's ``bitserial.acc_bits``.
ACC_BITS = 32
#: Per-bank configuration registers written by CFR (``col`` = register, ``row`` = value).
CFR_DTYPE = 8   #: bit-serial datatype code of the bank's MAC lanes (``accel.config.BITSERIAL_DATATYPES`` order)
CFR_SCALE = 9   #: unsigned group scale of the bank's MAC lanes
#: Channel registers of the AiM host interface (0 broadcast, 1 EWMUL bank groups, 2 activation function): stored,
#: no effect on MAC numerics or timing here.
CFR_CHANNEL_REGS = (0, 1, 2)
ERROR_CODE_BITS = 5


class PimRule(enum.IntEnum):
    """Rules a command can break, with the ``error_code`` the RTL raises for each (0: no error).

    When several rules are broken at once, the lowest code is reported.
    """

    NONE = 0
    RCD_RD = 1    #: ACT -> RD, same bank: nRCD
    RCD_WR = 2    #: ACT -> WR, same bank: nRCDWR
    RCD_MAC = 3   #: ACT -> MAC, same bank: nRCD_MAC (activate-to-MAC delay)
    RP = 4        #: PRE -> ACT or REF, same bank: nRP
    RAS = 5       #: ACT -> PRE, same bank: nRAS
    RC = 6        #: ACT -> ACT, same bank: nRC
    RRD_S = 7     #: ACT -> ACT, any bank: nRRDS
    RRD_L = 8     #: ACT -> ACT, same bank group: nRRDL (an all-bank ACT is in every group)
    FAW = 9       #: at most four ACTs in any nFAW window (all-bank ACT counts only if faw_all_bank)
    CCD_S = 10    #: column command -> column command: nCCDS
    CCD_L = 11    #: bank column command -> bank column command, same bank group: nCCDL
    CCD_AB = 12   #: all-bank MAC -> all-bank MAC: nCCD_AB
    WR = 13       #: WR -> PRE, same bank: nCWL + nBL + nWR (write recovery)
    RTP = 14      #: RD or MAC -> PRE, same bank: nRTP
    RFC = 15      #: REF -> ACT or REF: nRFC
    BUS = 16      #: a read's data must start at least nBL cycles after the previous read's data
    CLOSED = 17   #: RD/WR/MAC to a bank without an open row
    OPEN = 18     #: ACT to a bank whose row is open, or REF while a row is open
    ADDRESS = 19  #: bank, row, column or register out of range, or an op that has no all-bank form
    CFR_VALUE = 20  #: CFR value not allowed (datatype not built into the lanes, scale wider than scale_bits)
    OPCODE = 21   #: a command word that is not a PIM op
    MAC_BUSY = 22  #: MAC -> MAC, same bank, bit-serial lanes: one signed term per cycle, ``terms(datatype)`` cycles


#: Rules that make a command illegal whatever the cycle (an error in wait mode too).
ILLEGAL_RULES = frozenset({PimRule.CLOSED, PimRule.OPEN, PimRule.ADDRESS, PimRule.CFR_VALUE, PimRule.OPCODE})

#: The timing parameter behind each timing rule, for messages.
RULE_PARAM: dict[PimRule, str] = {
    PimRule.RCD_RD: "nRCD", PimRule.RCD_WR: "nRCDWR", PimRule.RCD_MAC: "nRCD_MAC", PimRule.RP: "nRP",
    PimRule.RAS: "nRAS", PimRule.RC: "nRC", PimRule.RRD_S: "nRRDS", PimRule.RRD_L: "nRRDL", PimRule.FAW: "nFAW",
    PimRule.CCD_S: "nCCDS", PimRule.CCD_L: "nCCDL", PimRule.CCD_AB: "nCCD_AB", PimRule.WR: "nCWL + nBL + nWR",
    PimRule.RTP: "nRTP", PimRule.RFC: "nRFC", PimRule.BUS: "nBL after the previous read's data",
    PimRule.MAC_BUSY: "terms of the bank's datatype, bit-serial lanes",
}


class PimTimingError(TimingError):
    """A command issued before a timing rule allows it; ``rule``, ``missing`` (cycles), ``bank``, ``cycle``."""

    def __init__(self, message: str, rule: PimRule, missing: int, bank: int | None, cycle: int) -> None:
        super().__init__(message)
        self.rule, self.missing, self.bank, self.cycle = rule, missing, bank, cycle


class PimIllegalError(StimulusError):
    """A command that is illegal whatever its cycle (RD to a closed bank, bank out of range, ...)."""

    def __init__(self, message: str, rule: PimRule, bank: int | None, cycle: int) -> None:
        super().__init__(message)
        self.rule, self.bank, self.cycle, self.missing = rule, bank, cycle, 0


def describe(op: PimOp, f: dict[str, int]) -> str:
    """A command in the text form of traces: ``MAC all_banks=1 col=0 count=64``."""
    args = " ".join(f"{k}={v}" for k, v in f.items() if v and k != "channel")
    return f"{op.name} {args}".rstrip()


def timing_message(op: PimOp, f: dict[str, int], rule: PimRule, missing: int, bank: int | None, cycle: int,
                   timing: PimTiming) -> str:
    where = f" bank {bank}:" if bank is not None else ""
    return (f"{describe(op, f)} at cycle {cycle}:{where} rule {rule.name} ({RULE_PARAM[rule]}) is {missing} "
            f"cycle{'s' if missing != 1 else ''} short; issue it at cycle {cycle + missing} or later, or run the "
            f"channel in wait mode (strict=0)")


@dataclass(frozen=True)
class Timing:
    """Distances (cycles) of every rule, derived once from :class:`~accel.config.PimTiming`."""

    rcd_rd: int
    rcd_wr: int
    rcd_mac: int
    rp: int
    ras: int
    rc: int
    rrd_s: int
    rrd_l: int
    faw: int
    ccd_s: int
    ccd_l: int
    ccd_ab: int
    wr: int
    rtp: int
    rfc: int
    bl: int
    rd_latency: int
    rdmac_latency: int
    faw_all_bank: bool

    @classmethod
    def of(cls, t: PimTiming) -> "Timing":
        return cls(rcd_rd=t.nRCD, rcd_wr=t.nRCDWR, rcd_mac=t.nRCD_MAC, rp=t.nRP, ras=t.nRAS, rc=t.nRC,
                   rrd_s=t.nRRDS, rrd_l=t.nRRDL, faw=t.nFAW, ccd_s=t.nCCDS, ccd_l=t.nCCDL, ccd_ab=t.nCCD_AB,
                   wr=t.nCWL + t.nBL + t.nWR, rtp=t.nRTP, rfc=t.nRFC, bl=t.nBL, rd_latency=t.nCL,
                   rdmac_latency=t.nBL, faw_all_bank=t.faw_all_bank)

    def step(self, op: PimOp, all_banks: bool) -> int:
        """Cycles between consecutive elements of a run (closed form used by the engine)."""
        if op == PimOp.RD:
            return max(self.ccd_l, self.bl)
        if op == PimOp.WR:
            return self.ccd_l
        if op == PimOp.MAC:
            return max(self.ccd_l, self.ccd_ab) if all_banks else self.ccd_l
        if op == PimOp.WRGB:
            return self.ccd_s
        if op == PimOp.RDMAC:
            return max(self.ccd_s, self.bl)
        return 1


def rdata_bits(pim: PimConfig) -> int:
    """Width of the read data port: a column or one bank's MAC register, whichever is wider."""
    return max(pim.column_bits, pim.mac_lanes * ACC_BITS)


def unpack_slots(word: int, lanes: int, slot_bits: int) -> np.ndarray:
    """A column word -> its ``lanes`` slots (unsigned), lane 0 in the low bits."""
    mask = (1 << slot_bits) - 1
    return np.array([(word >> (i * slot_bits)) & mask for i in range(lanes)], dtype=np.int64)


def pack_slots(slots: Any, slot_bits: int) -> int:
    mask = (1 << slot_bits) - 1
    out = 0
    for i, s in enumerate(slots):
        out |= (int(s) & mask) << (i * slot_bits)
    return out


class MacNumerics:
    """What one MAC element adds to a lane: int8 x int8 (``lane="int8"``), or for bit-serial lanes the code's value
    in the bank's datatype times the int8 activation times the bank's group scale (equal, modulo ``2**acc_bits``, to
    the bit-serial unit's shift-and-add dequantiser: ``accel.numerics.bitserial_dot``)."""

    def __init__(self, pim: PimConfig, bitserial: BitSerialConfig | None) -> None:
        if pim.lane == "bitserial" and bitserial is None:
            raise StimulusError("lane = 'bitserial' needs the device's BitSerialConfig (datatypes, scale_bits); "
                                "pass bitserial=device.bitserial")
        self.pim = pim
        self.bitserial = bitserial if pim.lane == "bitserial" else None
        self.acc_bits = self.bitserial.acc_bits if self.bitserial else ACC_BITS
        self.acc_mask = (1 << self.acc_bits) - 1
        # value table per built dtype code: index by (code & (2**code_bits - 1))
        self.values: dict[int, np.ndarray] = {}
        if self.bitserial:
            for name, code in self.bitserial.dtype_codes.items():
                self.values[code] = np.asarray(DATATYPES[name].values, dtype=np.int64)
        self.default_dtype = self.bitserial.dtype_codes[self.bitserial.datatypes[0]] if self.bitserial else 0

    def terms(self, dtype: int) -> int:
        """Cycles a bit-serial lane spends on one weight of ``dtype`` (signed terms: INT8 4, INT4/INT3/FP 2); 1 for
        bit-parallel lanes."""
        if self.bitserial is None:
            return 1
        return DATATYPES[BITSERIAL_DATATYPES[dtype]].terms

    def cfr_ok(self, reg: int, value: int) -> bool:
        if reg == CFR_DTYPE:
            return self.bitserial is None or value in self.values
        if reg == CFR_SCALE:
            return self.bitserial is None or value < (1 << self.bitserial.scale_bits)
        return True

    def weights(self, slots: np.ndarray, dtype: int) -> np.ndarray:
        """Slots of a weight column -> integer weight values (any leading shape, lanes last)."""
        if self.bitserial is None:
            low = slots & 0xFF
            return low - ((low & 0x80) << 1)
        table = self.values[dtype]
        bits = DATATYPES[BITSERIAL_DATATYPES[dtype]].code_bits
        return table[slots & ((1 << bits) - 1)]

    @staticmethod
    def acts(slots: np.ndarray) -> np.ndarray:
        low = slots & 0xFF
        return low - ((low & 0x80) << 1)

    def wrap(self, v: np.ndarray) -> np.ndarray:
        v = v & self.acc_mask
        return v - ((v >> (self.acc_bits - 1)) << self.acc_bits)


class PimBank:
    """One bank: its storage (rows x columns x lanes slots, rows allocated on first write), row buffer state, MAC
    register (``mac_lanes`` accumulators), configuration registers and the countdown counters of its timing rules."""

    COUNTERS = ("rcd_rd", "rcd_wr", "rcd_mac", "rp", "ras", "rc", "rtp", "wr", "mac")

    def __init__(self, pim: PimConfig, numerics: MacNumerics) -> None:
        self.pim = pim
        self.numerics = numerics
        self.rows: dict[int, np.ndarray] = {}
        self.reset()

    def reset(self) -> None:
        self.open = False
        self.row = 0
        self.acc = np.zeros(self.pim.mac_lanes, dtype=np.int64)
        self.dtype = self.numerics.default_dtype
        self.scale = 1
        self.counters = dict.fromkeys(self.COUNTERS, 0)

    def row_data(self, row: int) -> np.ndarray:
        if row not in self.rows:
            self.rows[row] = np.zeros((self.pim.columns, self.pim.mac_lanes), dtype=np.int64)
        return self.rows[row]

    def read(self, col: int) -> np.ndarray:
        return self.row_data(self.row)[col]

    def write(self, col: int, slots: np.ndarray) -> None:
        self.row_data(self.row)[col] = slots

    def mac(self, col: int, gb_slots: np.ndarray) -> None:
        n = self.numerics
        w = n.weights(self.read(col), self.dtype)
        term = w * n.acts(gb_slots)
        if n.bitserial is not None:
            term = term * self.scale
        self.acc = n.wrap(self.acc + term)

    def tick(self) -> None:
        c = self.counters
        for k in self.COUNTERS:
            if c[k]:
                c[k] -= 1


class PimChannel:
    """Per-cycle model of a PIM channel: ``reset()``, ``step(inputs) -> outputs`` (see the module docstring).

    Parameters
    ----------
    pim:
        The channel's :class:`~accel.config.PimConfig`.
    bitserial:
        The device's :class:`~accel.config.BitSerialConfig` (needed when ``pim.lane == "bitserial"``).
    raise_errors:
        Raise :class:`PimTimingError` / :class:`PimIllegalError` in the cycle of an error (the default, for users);
        when False, report it on ``error``/``error_code`` as the RTL does (for equivalence runs).

    Ports
    -----
    In: ``cmd__valid``, ``cmd__payload`` (64), ``wdata__valid``, ``wdata__payload`` (column_bits), ``strict`` (1).
    Out: ``cmd__ready``, ``wdata__ready``, ``rdata__valid``, ``rdata__payload`` (:func:`rdata_bits`), ``issued``
    (an element issued this cycle), ``error``, ``error_code`` (5).
    """

    def __init__(self, pim: PimConfig, bitserial: BitSerialConfig | None = None, raise_errors: bool = True) -> None:
        self.pim = pim
        self.t = Timing.of(pim.timing)
        self.numerics = MacNumerics(pim, bitserial)
        self.raise_errors = raise_errors
        self.banks = [PimBank(pim, self.numerics) for _ in range(pim.banks)]
        self.table = TABLES[Family.PIM]
        self.rdata_bits = rdata_bits(pim)
        self.gb = np.zeros((pim.gb_columns, pim.mac_lanes), dtype=np.int64)
        self.reset()

    # ---------------------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        for b in self.banks:
            b.reset()
        self.gb[:] = 0
        self.cfr = {r: 0 for r in CFR_CHANNEL_REGS}
        self.cycle = 0
        self.head: dict[str, int] | None = None
        self.head_first = False
        g = self.pim.bank_groups
        self.rrd_l = [0] * g
        self.ccd_l = [0] * g
        self.rrd_s = self.ccd_s = self.ccd_ab = self.rfc = self.bus = 0
        self.faw = [0, 0, 0, 0]
        self.faw_ptr = 0
        self.pipe: dict[int, int] = {}   # cycle -> rdata word
        self.err_sticky = 0
        self.err_code = 0

    def group(self, bank: int) -> int:
        return bank // self.pim.banks_per_group

    # ---------------------------------------------------------------------------------------------------------------
    def _targets(self, h: dict[str, int]) -> list[int]:
        return list(range(self.pim.banks)) if h["all_banks"] else [h["bank"]]

    def _illegal(self, h: dict[str, int]) -> tuple[PimRule, int | None]:
        """Rule that makes the head command illegal whatever the cycle (NONE if legal)."""
        p = self.pim
        op = h["op"]
        if h["family"] != Family.PIM or op not in set(int(o) for o in PimOp):
            return PimRule.OPCODE, None
        op = PimOp(op)
        ab = h["all_banks"]
        if op in (PimOp.NOP, PimOp.REF, PimOp.WRGB):
            pass
        elif not ab and h["bank"] >= p.banks:
            return PimRule.ADDRESS, h["bank"]
        if op == PimOp.RD and ab:
            return PimRule.ADDRESS, None
        if op == PimOp.ACT and h["row"] >= p.rows:
            return PimRule.ADDRESS, None if ab else h["bank"]
        if op in (PimOp.RD, PimOp.WR, PimOp.MAC) and h["col"] >= p.columns:
            return PimRule.ADDRESS, None if ab else h["bank"]
        if op == PimOp.WRGB and h["col"] >= p.gb_columns:
            return PimRule.ADDRESS, None
        if op == PimOp.RDMAC and not ab and h["bank"] >= p.banks:
            return PimRule.ADDRESS, h["bank"]
        n = max(1, h["count"])
        if op in (PimOp.RD, PimOp.WR, PimOp.MAC) and h["col"] + n > p.columns:
            return PimRule.ADDRESS, None if ab else h["bank"]
        if op == PimOp.WRGB and h["col"] + n > p.gb_columns:
            return PimRule.ADDRESS, None
        if op == PimOp.RDMAC and h["bank"] + n > p.banks:
            return PimRule.ADDRESS, h["bank"]
        if op == PimOp.CFR:
            if h["col"] not in CFR_CHANNEL_REGS and h["col"] not in (CFR_DTYPE, CFR_SCALE):
                return PimRule.ADDRESS, None
            if not self.numerics.cfr_ok(h["col"], h["row"]):
                return PimRule.CFR_VALUE, None
        if op in (PimOp.RD, PimOp.WR, PimOp.MAC):
            for b in self._targets(h):
                if not self.banks[b].open:
                    return PimRule.CLOSED, b
        if op == PimOp.ACT:
            for b in self._targets(h):
                if self.banks[b].open:
                    return PimRule.OPEN, b
        if op == PimOp.REF:
            for b in range(p.banks):
                if self.banks[b].open:
                    return PimRule.OPEN, b
        return PimRule.NONE, None

    def _violations(self, h: dict[str, int]) -> list[tuple[PimRule, int, int | None]]:
        """(rule, cycles missing, bank) of every timing rule the head's current element breaks now."""
        op = PimOp(h["op"])
        out: list[tuple[PimRule, int, int | None]] = []
        t = self.t

        def bank_rule(rule: PimRule, key: str, banks: list[int]) -> None:
            worst, wb = 0, None
            for b in banks:
                v = self.banks[b].counters[key]
                if v > worst:
                    worst, wb = v, b
            if worst:
                out.append((rule, worst, wb))

        def chan_rule(rule: PimRule, v: int) -> None:
            if v > 0:
                out.append((rule, v, None))

        targets = self._targets(h) if op != PimOp.RDMAC else [h["bank"]]
        groups = sorted({self.group(b) for b in targets})
        if op == PimOp.ACT:
            bank_rule(PimRule.RP, "rp", targets)
            bank_rule(PimRule.RC, "rc", targets)
            chan_rule(PimRule.RRD_S, self.rrd_s)
            chan_rule(PimRule.RRD_L, max(self.rrd_l[g] for g in groups))
            if not h["all_banks"] or t.faw_all_bank:
                chan_rule(PimRule.FAW, self.faw[self.faw_ptr])
            chan_rule(PimRule.RFC, self.rfc)
        elif op == PimOp.PRE:
            open_banks = [b for b in targets if self.banks[b].open]
            bank_rule(PimRule.RAS, "ras", open_banks)
            bank_rule(PimRule.WR, "wr", open_banks)
            bank_rule(PimRule.RTP, "rtp", open_banks)
        elif op in (PimOp.RD, PimOp.WR, PimOp.MAC):
            key = {PimOp.RD: "rcd_rd", PimOp.WR: "rcd_wr", PimOp.MAC: "rcd_mac"}[op]
            rule = {PimOp.RD: PimRule.RCD_RD, PimOp.WR: PimRule.RCD_WR, PimOp.MAC: PimRule.RCD_MAC}[op]
            bank_rule(rule, key, targets)
            chan_rule(PimRule.CCD_S, self.ccd_s)
            chan_rule(PimRule.CCD_L, max(self.ccd_l[g] for g in groups))
            if op == PimOp.MAC and h["all_banks"]:
                chan_rule(PimRule.CCD_AB, self.ccd_ab)
            if op == PimOp.MAC:
                bank_rule(PimRule.MAC_BUSY, "mac", targets)
            if op == PimOp.RD:
                chan_rule(PimRule.BUS, self.bus - t.rd_latency)
        elif op == PimOp.WRGB:
            chan_rule(PimRule.CCD_S, self.ccd_s)
        elif op == PimOp.RDMAC:
            chan_rule(PimRule.CCD_S, self.ccd_s)
            chan_rule(PimRule.BUS, self.bus - t.rdmac_latency)
        elif op == PimOp.REF:
            bank_rule(PimRule.RP, "rp", list(range(self.pim.banks)))
            chan_rule(PimRule.RFC, self.rfc)
        out.sort(key=lambda x: int(x[0]))
        return out

    # ---------------------------------------------------------------------------------------------------------------
    def _issue(self, h: dict[str, int], wword: int) -> None:
        """Apply the head's current element (state changes take effect at the clock edge)."""
        op = PimOp(h["op"])
        t = self.t
        p = self.pim
        targets = self._targets(h)

        def setc(bank: PimBank, key: str, n: int) -> None:
            bank.counters[key] = max(bank.counters[key], n)

        if op == PimOp.ACT:
            for b in targets:
                bk = self.banks[b]
                bk.open, bk.row = True, h["row"]
                for key, n in (("rcd_rd", t.rcd_rd), ("rcd_wr", t.rcd_wr), ("rcd_mac", t.rcd_mac),
                               ("ras", t.ras), ("rc", t.rc)):
                    setc(bk, key, n)
            self.rrd_s = max(self.rrd_s, t.rrd_s)
            for g in {self.group(b) for b in targets}:
                self.rrd_l[g] = max(self.rrd_l[g], t.rrd_l)
            if not h["all_banks"] or t.faw_all_bank:
                self.faw[self.faw_ptr] = t.faw
                self.faw_ptr = (self.faw_ptr + 1) % 4
        elif op == PimOp.PRE:
            for b in targets:
                bk = self.banks[b]
                if bk.open:
                    bk.open = False
                    setc(bk, "rp", t.rp)
        elif op in (PimOp.RD, PimOp.WR, PimOp.MAC):
            col = h["col"]
            self.ccd_s = max(self.ccd_s, t.ccd_s)
            for g in {self.group(b) for b in targets}:
                self.ccd_l[g] = max(self.ccd_l[g], t.ccd_l)
            if op == PimOp.RD:
                bk = self.banks[h["bank"]]
                setc(bk, "rtp", t.rtp)
                self._schedule_read(pack_slots(bk.read(col), p.slot_bits), t.rd_latency)
            elif op == PimOp.WR:
                slots = unpack_slots(wword, p.mac_lanes, p.slot_bits)
                for b in targets:
                    self.banks[b].write(col, slots)
                    setc(self.banks[b], "wr", t.wr)
            else:
                gbs = self.gb[col % p.gb_columns]
                for b in targets:
                    self.banks[b].mac(col, gbs)
                    setc(self.banks[b], "rtp", t.rtp)
                    setc(self.banks[b], "mac", self.numerics.terms(self.banks[b].dtype))
                if h["all_banks"]:
                    self.ccd_ab = max(self.ccd_ab, t.ccd_ab)
        elif op == PimOp.WRGB:
            self.gb[h["col"]] = unpack_slots(wword, p.mac_lanes, p.slot_bits)
            self.ccd_s = max(self.ccd_s, t.ccd_s)
        elif op == PimOp.RDMAC:
            bk = self.banks[h["bank"]]
            word = pack_slots(bk.acc, ACC_BITS)
            self.ccd_s = max(self.ccd_s, t.ccd_s)
            self._schedule_read(word, t.rdmac_latency)
        elif op == PimOp.CLRMAC:
            for b in targets:
                self.banks[b].acc[:] = 0
        elif op == PimOp.REF:
            self.rfc = max(self.rfc, t.rfc)
        elif op == PimOp.CFR:
            reg, val = h["col"], h["row"]
            if reg in CFR_CHANNEL_REGS:
                self.cfr[reg] = val
            else:
                for b in targets:
                    if reg == CFR_DTYPE:
                        self.banks[b].dtype = val
                    else:
                        self.banks[b].scale = val

    def _schedule_read(self, word: int, latency: int) -> None:
        self.pipe[self.cycle + latency] = word
        self.bus = max(self.bus, latency + self.t.bl)

    @staticmethod
    def _needs_data(op: int) -> bool:
        return op in (PimOp.WR, PimOp.WRGB)

    def _advance(self, h: dict[str, int]) -> bool:
        """Move a run to its next element; True if the command is complete."""
        h["count"] -= 1
        if h["count"] <= 0:
            return True
        if h["op"] == PimOp.RDMAC:
            h["bank"] += 1
        else:
            h["col"] += 1
        return False

    def _error(self, rule: PimRule, missing: int, bank: int | None, h: dict[str, int]) -> None:
        if self.raise_errors:
            op = PimOp(h["op"]) if h["op"] in set(int(o) for o in PimOp) else None
            fields = {k: h[k] for k in ("all_banks", "bank", "row", "col", "count")}
            if rule in ILLEGAL_RULES:
                name = describe(op, fields) if op is not None else f"op {h['op']} of family {h['family']}"
                raise PimIllegalError(f"{name} at cycle {self.cycle}: {illegal_message(rule, bank, self.pim)}",
                                      rule, bank, self.cycle)
            raise PimTimingError(timing_message(op, fields, rule, missing, bank, self.cycle, self.pim.timing),
                                 rule, missing, bank, self.cycle)

    # ---------------------------------------------------------------------------------------------------------------
    def step(self, inputs: dict[str, int]) -> dict[str, int]:
        strict = inputs.get("strict", 0)
        wvalid = inputs.get("wdata__valid", 0)
        h = self.head
        issue = False
        done = False
        err_rule, err_missing, err_bank = PimRule.NONE, 0, None
        if h is not None:
            rule, bank = self._illegal(h) if self.head_first else (PimRule.NONE, None)
            if rule != PimRule.NONE:
                err_rule, err_bank, done = rule, bank, True
            else:
                viol = self._violations(h)
                if viol:
                    if strict and self.head_first:
                        err_rule, err_missing, err_bank = viol[0]
                        done = True
                elif not self._needs_data(h["op"]) or wvalid:
                    issue = True
        rvalid = int(self.cycle in self.pipe)
        outs = {
            "cmd__ready": int(h is None or done or (issue and h["count"] <= 1)),
            "wdata__ready": int(issue and self._needs_data(h["op"])),
            "rdata__valid": rvalid,
            "rdata__payload": self.pipe.get(self.cycle, 0),
            "issued": int(issue),
            "error": int(bool(self.err_sticky) or err_rule != PimRule.NONE),
            "error_code": int(err_rule) if err_rule != PimRule.NONE else self.err_code,
        }
        if err_rule != PimRule.NONE:
            self._error(err_rule, err_missing, err_bank, h)

        # ---- next state (clock edge)
        if issue:
            self._issue(h, inputs.get("wdata__payload", 0))
        self.pipe.pop(self.cycle, None)
        for b in self.banks:
            b.tick()
        self.rrd_l = [max(0, v - 1) for v in self.rrd_l]
        self.ccd_l = [max(0, v - 1) for v in self.ccd_l]
        self.rrd_s = max(0, self.rrd_s - 1)
        self.ccd_s = max(0, self.ccd_s - 1)
        self.ccd_ab = max(0, self.ccd_ab - 1)
        self.rfc = max(0, self.rfc - 1)
        self.bus = max(0, self.bus - 1)
        self.faw = [max(0, v - 1) for v in self.faw]
        if err_rule != PimRule.NONE:
            self.err_sticky, self.err_code = 1, int(err_rule)
        if issue:
            self.head_first = False
            done = self._advance(h)
        if done:
            self.head = None
        if inputs.get("cmd__valid", 0) and outs["cmd__ready"]:
            self.head = self._decode(inputs["cmd__payload"])
            self.head_first = True
        self.cycle += 1
        return outs

    def _decode(self, word: int) -> dict[str, int]:
        v = self.table.decode(word)
        v["count"] = max(1, v["count"])
        if v["op"] == PimOp.RDMAC and v["all_banks"]:
            v["bank"], v["count"], v["all_banks"] = 0, self.pim.banks, 0
        return v


def illegal_message(rule: PimRule, bank: int | None, pim: PimConfig) -> str:
    where = f"bank {bank}" if bank is not None else "the command"
    return {
        PimRule.CLOSED: f"{where} has no open row; ACT a row first",
        PimRule.OPEN: f"{where} already has an open row; PRE it first",
        PimRule.ADDRESS: (f"{where} addresses outside the channel (banks 0..{pim.banks - 1}, rows 0..{pim.rows - 1}, "
                          f"columns 0..{pim.columns - 1}, global buffer columns 0..{pim.gb_columns - 1}, CFR "
                          f"registers {', '.join(map(str, CFR_CHANNEL_REGS))}, {CFR_DTYPE}, {CFR_SCALE}; RD has no "
                          f"all-bank form)"),
        PimRule.CFR_VALUE: "the CFR value is not allowed (a datatype the lanes are not built for, or a scale wider "
                           "than scale_bits)",
        PimRule.OPCODE: "not a PIM command word; encode it with accel.isa.encode('pim', ...)",
    }[rule]

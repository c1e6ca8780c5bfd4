"""Per-cycle models of the PIM bank and channel (``PimBank``, ``PimChannel``), equal to ``rtl/pim.py``.

The channel takes 64-bit command words (``accel/isa.py``, family PIM) on its ``cmd`` stream, data words for WR/WRGB on
``wdata``, and returns read data (RD columns, RDMAC registers) on ``rdata``. Its timing rules are the rows of the
table in ``accel/interfaces/pim.py``, compiled (:func:`~accel.interfaces.pim.compile_rules`) into countdown counters,
as in the RTL: each *source* (rows with the same level and preceding commands) is a counter per bank, bank group or
channel; an issue of a preceding command sets it to the source's length, every cycle lowers it by one, and a row is
broken while the counter exceeds the row's threshold (length minus latency) — by the number of cycles missing.
``emulator/engine.py`` computes the same schedule from timestamps, in closed form; tests prove both equal.

Cycle behaviour (see ``docs/pim.md``)
-------------------------------------
* A command word is taken from ``cmd`` into the *head* register when the head is free (or frees this cycle); it issues
  from the head, so the earliest issue is the cycle after the transfer. One command element issues per cycle at most.
* Run-length commands (``count`` > 1) issue element by element, each at its earliest legal cycle.
* ``strict`` = 0 (wait mode): the head waits until its element is legal. ``strict`` = 1: the first element of a command
  must be legal in its first cycle in the head; otherwise the channel raises ``error`` with the rule's code
  (:data:`~accel.interfaces.pim.PimRule`) in that cycle and drops the command. Illegal commands (RD to a closed bank,
  ...) are errors in both modes. ``error`` stays high afterwards; ``error_code`` shows the latest error.
* WR/WRGB elements take one ``wdata`` word each, in their issue cycle (an element waits for its word).
* RD data appears on ``rdata`` ``rd_latency`` (nCL) cycles after the issue, RDMAC data ``rdmac_latency`` (nBL) cycles
  after; a read may not put its data on the bus less than ``nBL`` cycles after the previous read's data (rule BUS).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from accel.config import BitSerialConfig, PimConfig
from accel.errors import StimulusError
from accel.interfaces.pim import (
    BANK_TARGETS, CFR_CHANNEL_REGS, CFR_DTYPE, CFR_REGISTERS, CFR_SCALE, ACC_BITS, PIM_TIMING_RULES,
    PimIllegalError, PimTimingError, Row, TimingRule, acc_bits, compile_rules, describe, illegal_message,
    lane_terms, max_terms, pack_slots, rdata_bits, reset_dtype, timing_message, unpack_slots,
)
from accel.isa import TABLES, Family, PimOp
from accel.numerics import DATATYPES

__all__ = ["PimBank", "PimChannel", "MacNumerics"]

_OPS = frozenset(int(o) for o in PimOp)
_LEVEL_SIZE = {"bank": "banks", "bg": "bank_groups", "ch": None}


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
        self.acc_bits = acc_bits(pim, bitserial)
        self.acc_mask = (1 << self.acc_bits) - 1
        self.lane_terms = lane_terms(pim, bitserial)
        # value table per built dtype code: index by (code & (2**code_bits - 1))
        self.values: dict[int, np.ndarray] = {}
        self.code_bits: dict[int, int] = {}
        if self.bitserial:
            for name, code in self.bitserial.dtype_codes.items():
                self.values[code] = np.asarray(DATATYPES[name].values, dtype=np.int64)
                self.code_bits[code] = DATATYPES[name].code_bits
        self.default_dtype = reset_dtype(pim, bitserial)

    def terms(self, dtype: int) -> int:
        """Cycles a bit-serial lane spends on one weight of ``dtype`` (signed terms: INT8 4, INT4/INT3/FP 2); 1 for
        bit-parallel lanes."""
        return self.lane_terms.get(dtype, 1)

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
        return self.values[dtype][slots & ((1 << self.code_bits[dtype]) - 1)]

    @staticmethod
    def acts(slots: np.ndarray) -> np.ndarray:
        low = slots & 0xFF
        return low - ((low & 0x80) << 1)

    def wrap(self, v: np.ndarray) -> np.ndarray:
        v = v & self.acc_mask
        return v - ((v >> (self.acc_bits - 1)) << self.acc_bits)


class PimBank:
    """One bank: its storage (rows x columns x lanes slots, rows allocated on first write), row buffer state, MAC
    register (``mac_lanes`` accumulators) and configuration registers (its timing counters are the channel's)."""

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


class PimChannel:
    """Per-cycle model of a PIM channel: ``reset()``, ``step(inputs) -> outputs`` (see the module docstring).

    Parameters
    ----------
    pim:
        The channel's :class:`~accel.config.PimConfig`.
    bitserial:
        The device's :class:`~accel.config.BitSerialConfig` (needed when ``pim.lane == "bitserial"``).
    raise_errors:
        Raise :class:`~accel.interfaces.pim.PimTimingError` / :class:`~accel.interfaces.pim.PimIllegalError` in the
        cycle of an error (the default, for users); when False, report it on ``error``/``error_code`` as the RTL does
        (for equivalence runs).
    rules:
        The timing-rule table (default: the channel's, :data:`~accel.interfaces.pim.PIM_TIMING_RULES`).

    Ports
    -----
    In: ``cmd__valid``, ``cmd__payload`` (64), ``wdata__valid``, ``wdata__payload`` (column_bits), ``strict`` (1).
    Out: ``cmd__ready``, ``wdata__ready``, ``rdata__valid``, ``rdata__payload``
    (:func:`~accel.interfaces.pim.rdata_bits`), ``issued`` (an element issued this cycle), ``error``, ``error_code``
    (:attr:`ChannelRules.error_code_bits <accel.interfaces.pim.ChannelRules>`).
    """

    def __init__(self, pim: PimConfig, bitserial: BitSerialConfig | None = None, raise_errors: bool = True,
                 rules: Iterable[TimingRule] = PIM_TIMING_RULES) -> None:
        self.pim = pim
        self.numerics = MacNumerics(pim, bitserial)
        self.rules = compile_rules(pim, max_terms(pim, bitserial), rules)
        self.codes = self.rules.codes
        self.raise_errors = raise_errors
        self.banks = [PimBank(pim, self.numerics) for _ in range(pim.banks)]
        self.table = TABLES[Family.PIM]
        self.rdata_bits = rdata_bits(pim)
        self.gb = np.zeros((pim.gb_columns, pim.mac_lanes), dtype=np.int64)
        # counters: one per instance of each source's level (a ring of ``window`` for window sources)
        self._base: list[int] = []
        n = 0
        for src in self.rules.sources:
            self._base.append(n)
            size = _LEVEL_SIZE[src.level]
            n += (getattr(pim, size) if size else 1) * src.window
        self._ncounters = n
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
        self.counters = [0] * self._ncounters
        self.ring = [0] * len(self.rules.sources)   # window sources: the counter of the oldest remembered issue
        self.pipe: dict[int, int] = {}   # cycle -> rdata word
        self.err_sticky = 0
        self.err_code = 0

    def group(self, bank: int) -> int:
        return bank // self.pim.banks_per_group

    # ---------------------------------------------------------------------------------------------------------------
    def _targets(self, h: dict[str, int]) -> list[int]:
        return list(range(self.pim.banks)) if h["all_banks"] else [h["bank"]]

    def _timing_banks(self, h: dict[str, int]) -> list[int]:
        """The banks the head's element acts on for the timing rules (``BANK_TARGETS``)."""
        kind = BANK_TARGETS[PimOp(h["op"])]
        if kind == "none":
            return []
        if kind == "all":
            return list(range(self.pim.banks))
        if kind == "bank":
            return [h["bank"]]
        targets = self._targets(h)
        return [b for b in targets if self.banks[b].open] if kind == "open" else targets

    def _illegal(self, h: dict[str, int]) -> tuple[int, int | None]:
        """Rule that makes the head command illegal whatever the cycle (NONE if legal)."""
        p = self.pim
        rule = self.codes
        op = h["op"]
        if h["family"] != Family.PIM or op not in _OPS:
            return rule.OPCODE, None
        op = PimOp(op)
        ab = h["all_banks"]
        if op in (PimOp.NOP, PimOp.REF, PimOp.WRGB):
            pass
        elif not ab and h["bank"] >= p.banks:
            return rule.ADDRESS, h["bank"]
        if op == PimOp.RD and ab:
            return rule.ADDRESS, None
        if op == PimOp.ACT and h["row"] >= p.rows:
            return rule.ADDRESS, None if ab else h["bank"]
        if op in (PimOp.RD, PimOp.WR, PimOp.MAC) and h["col"] >= p.columns:
            return rule.ADDRESS, None if ab else h["bank"]
        if op == PimOp.WRGB and h["col"] >= p.gb_columns:
            return rule.ADDRESS, None
        if op == PimOp.RDMAC and not ab and h["bank"] >= p.banks:
            return rule.ADDRESS, h["bank"]
        n = max(1, h["count"])
        if op in (PimOp.RD, PimOp.WR, PimOp.MAC) and h["col"] + n > p.columns:
            return rule.ADDRESS, None if ab else h["bank"]
        if op == PimOp.WRGB and h["col"] + n > p.gb_columns:
            return rule.ADDRESS, None
        if op == PimOp.RDMAC and h["bank"] + n > p.banks:
            return rule.ADDRESS, h["bank"]
        if op == PimOp.CFR:
            if h["col"] not in CFR_REGISTERS:
                return rule.ADDRESS, None
            if not self.numerics.cfr_ok(h["col"], h["row"]):
                return rule.CFR_VALUE, None
        if op in (PimOp.RD, PimOp.WR, PimOp.MAC):
            for b in self._targets(h):
                if not self.banks[b].open:
                    return rule.CLOSED, b
        if op == PimOp.ACT:
            for b in self._targets(h):
                if self.banks[b].open:
                    return rule.OPEN, b
        if op == PimOp.REF:
            for b in range(p.banks):
                if self.banks[b].open:
                    return rule.OPEN, b
        return rule.NONE, None

    def _violations(self, h: dict[str, int]) -> list[tuple[int, int, int | None, Row]]:
        """(rule, cycles missing, bank, binding row) of every timing rule the head's current element breaks now, in
        code order (per rule its worst row; per bank-level row the bank missing most, the lowest on ties)."""
        rows = self.rules.rows_for[(h["op"], h["all_banks"])]
        if not rows:
            return []
        banks = self._timing_banks(h)
        bpg = self.pim.banks_per_group
        groups = sorted({b // bpg for b in banks})
        c = self.counters
        found: list[tuple[Row, int, int | None]] = []
        for r in rows:
            s = r.source
            base = self._base[s.index]
            if s.level == "ch":
                v = c[base + self.ring[s.index]] - r.threshold
                if v > 0:
                    found.append((r, v, None))
            elif s.level == "bank":
                worst, wb = 0, None
                for b in banks:
                    v = c[base + b] - r.threshold
                    if v > worst:
                        worst, wb = v, b
                if wb is not None:
                    found.append((r, worst, wb))
            else:
                worst = max([c[base + g] - r.threshold for g in groups], default=0)
                if worst > 0:
                    found.append((r, worst, None))
        return self.rules.worst(found)

    def _set_counters(self, h: dict[str, int]) -> None:
        """Start the counters of every source the head's element sets (before it changes the banks' state)."""
        sources = self.rules.sources_for[(h["op"], h["all_banks"])]
        if not sources:
            return
        banks = self._timing_banks(h)
        bpg = self.pim.banks_per_group
        c = self.counters
        for s in sources:
            base = self._base[s.index]
            if s.level == "ch":
                i = base + self.ring[s.index]
                c[i] = max(c[i], s.length)
                if s.window > 1:
                    self.ring[s.index] = (self.ring[s.index] + 1) % s.window
            elif s.level == "bank":
                for b in banks:
                    n = self.numerics.terms(self.banks[b].dtype) + s.offset if s.dynamic else s.length
                    c[base + b] = max(c[base + b], n)
            else:
                for g in {b // bpg for b in banks}:
                    c[base + g] = max(c[base + g], s.length)

    # ---------------------------------------------------------------------------------------------------------------
    def _issue(self, h: dict[str, int], wword: int) -> None:
        """Apply the head's current element (state changes take effect at the clock edge)."""
        op = PimOp(h["op"])
        p = self.pim
        targets = self._targets(h)
        self._set_counters(h)
        if op == PimOp.ACT:
            for b in targets:
                self.banks[b].open, self.banks[b].row = True, h["row"]
        elif op == PimOp.PRE:
            for b in targets:
                self.banks[b].open = False
        elif op == PimOp.RD:
            bk = self.banks[h["bank"]]
            self._schedule_read(pack_slots(bk.read(h["col"]), p.slot_bits), p.timing.rd_latency)
        elif op == PimOp.WR:
            slots = unpack_slots(wword, p.mac_lanes, p.slot_bits)
            for b in targets:
                self.banks[b].write(h["col"], slots)
        elif op == PimOp.MAC:
            gbs = self.gb[h["col"] % p.gb_columns]
            for b in targets:
                self.banks[b].mac(h["col"], gbs)
        elif op == PimOp.WRGB:
            self.gb[h["col"]] = unpack_slots(wword, p.mac_lanes, p.slot_bits)
        elif op == PimOp.RDMAC:
            self._schedule_read(pack_slots(self.banks[h["bank"]].acc, ACC_BITS), p.timing.rdmac_latency)
        elif op == PimOp.CLRMAC:
            for b in targets:
                self.banks[b].acc[:] = 0
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

    def _error(self, rule: int, missing: int, bank: int | None, row: Row | None, h: dict[str, int]) -> None:
        if self.raise_errors:
            op = PimOp(h["op"]) if h["op"] in _OPS else None
            fields = {k: h[k] for k in ("all_banks", "bank", "row", "col", "count")}
            rule = self.codes(rule)
            if row is None:
                name = describe(op, fields) if op is not None else f"op {h['op']} of family {h['family']}"
                raise PimIllegalError(f"{name} at cycle {self.cycle}: {illegal_message(rule, bank, self.pim)}",
                                      rule, bank, self.cycle)
            raise PimTimingError(timing_message(op, fields, rule, row.rule, missing, bank, self.cycle),
                                 rule, missing, bank, self.cycle)

    # ---------------------------------------------------------------------------------------------------------------
    def step(self, inputs: dict[str, int]) -> dict[str, int]:
        strict = inputs.get("strict", 0)
        wvalid = inputs.get("wdata__valid", 0)
        h = self.head
        issue = False
        done = False
        err_rule, err_missing, err_bank, err_row = 0, 0, None, None
        if h is not None:
            rule, bank = self._illegal(h) if self.head_first else (0, None)
            if rule:
                err_rule, err_bank, done = rule, bank, True
            else:
                viol = self._violations(h)
                if viol:
                    if strict and self.head_first:
                        err_rule, err_missing, err_bank, err_row = viol[0]
                        done = True
                elif not self._needs_data(h["op"]) or wvalid:
                    issue = True
        outs = {
            "cmd__ready": int(h is None or done or (issue and h["count"] <= 1)),
            "wdata__ready": int(issue and self._needs_data(h["op"])),
            "rdata__valid": int(self.cycle in self.pipe),
            "rdata__payload": self.pipe.get(self.cycle, 0),
            "issued": int(issue),
            "error": int(bool(self.err_sticky) or bool(err_rule)),
            "error_code": int(err_rule) if err_rule else self.err_code,
        }
        if err_rule:
            self._error(err_rule, err_missing, err_bank, err_row, h)

        # ---- next state (clock edge)
        if issue:
            self._issue(h, inputs.get("wdata__payload", 0))
        self.pipe.pop(self.cycle, None)
        self.counters = [v - 1 if v else 0 for v in self.counters]
        if err_rule:
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

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

from functools import lru_cache
from typing import Iterable

import numpy as np

from accel.config import BankUnit, BitSerialConfig, PimConfig
from accel.errors import StimulusError
from accel.interfaces.bitserial import wgt_layout
from accel.interfaces.pim import (
    BANK_TARGETS, CFR_CHANNEL_REGS, CFR_FORMAT, CFR_REGISTERS, ACC_BITS, PIM_TIMING_RULES,
    PimIllegalError, PimTimingError, Row, TimingRule, acc_bits, beat_of, column_bytes, column_fields,
    column_word, compile_rules, describe, entry_datatype, entry_index, format_pace, illegal_message, pack_words,
    rdata_bits, timing_message, unpack_entry,
)
from accel.isa import TABLES, Family, PimOp
from accel.numerics import wrap

from .bitserial import BitSerialUnit

__all__ = ["PimBank", "PimChannel", "BankMac", "bank_unit"]

_OPS = frozenset(int(o) for o in PimOp)
_LEVEL_SIZE = {"bank": "banks", "bg": "bank_groups", "ch": None}


def bank_unit(pim: PimConfig, bitserial: BitSerialConfig | None) -> BankUnit:
    """The bank MAC unit of a channel (:class:`~accel.config.BankUnit`, one object per configuration: its derived
    values are computed once); a bit-serial channel needs the device's BitSerialConfig."""
    if pim.lane == "bitserial" and bitserial is None:
        raise StimulusError("lane = 'bitserial' needs the device's BitSerialConfig (datatypes, scale_bits); "
                            "pass bitserial=device.bitserial")
    return _bank_unit(pim, bitserial if pim.lane == "bitserial" else None)


@lru_cache(maxsize=64)
def _bank_unit(pim: PimConfig, bitserial: BitSerialConfig | None) -> BankUnit:
    return BankUnit(pim, bitserial)


def cfr_ok(unit: BankUnit, reg: int, value: int) -> bool:
    """Whether CFR may write ``value`` into ``reg`` (the format register takes one of the bank's formats)."""
    return value in unit.formats if reg == CFR_FORMAT else True


class BankMac:
    """Per-cycle model of one bank's MAC unit (docs/pim.md, "The bank's MAC unit").

    Bit-serial banks: ``units`` instances of the bit-serial unit's per-cycle model
    (:class:`~accel.emulator.units.bitserial.BitSerialUnit`), the format register, the metadata register
    (``max_metadata_columns`` columns), each unit's latched metadata entry, the column sequencer and one accumulator
    per unit. A MAC of a metadata column loads it into the metadata register; a MAC of a data column hands its beats
    to the active units, each unit's first beat in the MAC's issue cycle (from the column as read), the others every
    ``format_terms`` cycles (from the latched column and activations). A beat that starts a group (by its row-local
    position, :func:`~accel.interfaces.pim.entry_index`) latches its unit's entry; every beat carries its unit's
    latched datatype (:func:`~accel.interfaces.pim.entry_datatype`) and scale, with ``last`` set, so each group's
    dequantised sum leaves the unit on ``res`` and is added to the unit's accumulator.

    int8 lanes: ``mac_lanes`` multipliers; a column's weights go to lane ``i mod mac_lanes`` in slice
    ``i div mac_lanes``, one slice per cycle from the issue cycle on.

    Accumulators wrap at :func:`~accel.interfaces.pim.acc_bits`. ``clear`` and a result in the same cycle: the result
    survives (``acc <- 0 + result``).
    """

    def __init__(self, unit: BankUnit) -> None:
        self.unit = unit
        self.bs = unit.bitserial
        self.acc_bits = acc_bits(unit)
        self.pace = format_pace(unit)
        self._units: list[BitSerialUnit] | None = None   # built when a first beat comes (engines never feed them)
        if self.bs is not None:
            offs = wgt_layout(self.bs).offsets()
            self._dtype_at, self._scale_at = offs["dtype"][0], offs["scale"][0]
            self._last = 1 << offs["last"][0]
            self._cbits = self.bs.max_weight_bits
        self.reset()

    def reset(self) -> None:
        u = self.unit
        self.fmt = u.reset_format
        self.acc = [0] * u.mac_registers
        self.meta = 0
        self.entry = [(0, 0)] * max(1, u.units)
        self.seq: tuple | None = None      # the column being fed: (data bytes, act bytes, format, col, cycle)
        self._ins: list | None = None     # this cycle's unit inputs
        self._clear = False
        self._load_meta: tuple[int, int] | None = None
        for x in self._units or ():
            x.reset()

    @property
    def units(self) -> list[BitSerialUnit]:
        """The bank's bit-serial units (per-cycle models)."""
        if self._units is None:
            self._units = [BitSerialUnit(self.bs) for _ in range(self.unit.units)]
        return self._units

    # ---- commands (at their issue, before the clock edge)
    def mac(self, col: int, data: np.ndarray, acts: np.ndarray) -> None:
        """A MAC element on column ``col`` (its bytes ``data``), with the global buffer's activations ``acts``
        (the bytes of the ``gb_columns_per_mac`` global-buffer columns it reads)."""
        u, f = self.unit, self.fmt
        if self.bs is not None and col < u.metadata_columns(f):
            shift = col * u.pim.column_bits
            mask = ((1 << u.pim.column_bits) - 1) << shift
            self._load_meta = (mask, column_word(data) << shift)
            return
        self.seq = (data, acts, f, col, 0)

    def clear(self) -> None:
        self._clear = True

    # ---- one cycle
    def step(self) -> None:
        """Advance one cycle: feed this cycle's beats, take the units' results, apply a clear and a metadata load."""
        res = [0] * len(self.acc)
        if self.seq is not None:
            self._beats(res)
        if self.bs is not None and (self._units is not None or self._ins is not None):
            for k, x in enumerate(self.units):
                ins = self._ins[k] if self._ins is not None else None
                if ins is None and not (x.m_busy or x.d_busy or x.o_valid):
                    continue   # an idle unit with no input keeps its state
                outs = x.step(ins or _IDLE)
                if ins is not None and not outs["wgt__ready"]:  # pragma: no cover - excluded by BankUnit's checks
                    raise AssertionError("a bit-serial unit was not ready for its beat: the bank's pace is wrong")
                if outs["res__valid"]:
                    res[k] = wrap(outs["res__payload"], self.acc_bits)
            self._ins = None
        self.acc = [wrap((0 if self._clear else a) + r, self.acc_bits) for a, r in zip(self.acc, res)]
        self._clear = False
        if self._load_meta is not None:
            mask, bits = self._load_meta
            self.meta = (self.meta & ~mask) | bits
            self._load_meta = None

    def _beats(self, res: list[int]) -> None:
        data, acts, f, col, m = self.seq
        u = self.unit
        if self.bs is None:
            lanes = u.pim.mac_lanes
            w = column_fields(data, 8)[m * lanes:(m + 1) * lanes]
            a = acts.astype(np.int64)[m * lanes:(m + 1) * lanes]
            prod = (w - ((w & 0x80) << 1)) * (a - ((a & 0x80) << 1))
            for i in range(lanes):
                res[i] += int(prod[i])
            self.seq = None if m + 1 == u.cycles_per_column(f) else (data, acts, f, col, m + 1)
            return
        t = u.format_terms(f)
        n = u.unit_beats(f)
        if m % t == 0:   # a beat for every active unit in this cycle
            beat = m // t
            codes = column_fields(data, f)
            l = u.unit_lanes
            self._ins = [None] * u.units
            for k in range(u.active_units(f)):
                j = beat_of(u, f, k, beat)
                starts, index = entry_index(u, f, col, beat, k)
                if starts:
                    self.entry[k] = unpack_entry(u, self.meta, int(index))
                code, scale = self.entry[k]
                word = 0
                for i, c in enumerate(codes[j * l:(j + 1) * l]):
                    word |= int(c) << (i * self._cbits)
                word |= (entry_datatype(u, f, code) << self._dtype_at) | (scale << self._scale_at) | self._last
                act = int.from_bytes(acts[j * l:(j + 1) * l].tobytes(), "little")
                self._ins[k] = {"act__valid": 1, "wgt__valid": 1, "act__payload": act, "wgt__payload": word,
                                "res__ready": 1}
        self.seq = None if m == (n - 1) * t else (data, acts, f, col, m + 1)


_IDLE = {"act__valid": 0, "wgt__valid": 0, "act__payload": 0, "wgt__payload": 0, "res__ready": 1}


class PimBank:
    """One bank: its storage (rows x columns of ``column_bits / 8`` bytes, rows allocated on first write), row buffer
    state and MAC unit (:class:`BankMac`; its timing counters are the channel's)."""

    def __init__(self, unit: BankUnit) -> None:
        self.pim = unit.pim
        self.mac_unit = BankMac(unit)
        self.rows: dict[int, np.ndarray] = {}
        self.reset()

    def reset(self) -> None:
        self.open = False
        self.row = 0
        self.mac_unit.reset()

    def row_data(self, row: int) -> np.ndarray:
        if row not in self.rows:
            self.rows[row] = np.zeros((self.pim.columns, self.pim.column_bytes), dtype=np.uint8)
        return self.rows[row]

    def read(self, col: int) -> np.ndarray:
        return self.row_data(self.row)[col]

    def write(self, col: int, data: np.ndarray) -> None:
        self.row_data(self.row)[col] = data


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
        self.unit = bank_unit(pim, bitserial)
        self.rules = compile_rules(self.unit, rules)
        self.codes = self.rules.codes
        self.raise_errors = raise_errors
        self.banks = [PimBank(self.unit) for _ in range(pim.banks)]
        self.table = TABLES[Family.PIM]
        self.rdata_bits = rdata_bits(self.unit)
        self.gb = np.zeros((pim.gb_columns, pim.column_bytes), dtype=np.uint8)
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
            if not cfr_ok(self.unit, h["col"], h["row"]):
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
                    n = self.unit_pace(b) + s.offset if s.dynamic else s.length
                    c[base + b] = max(c[base + b], n)
            else:
                for g in {b // bpg for b in banks}:
                    c[base + g] = max(c[base + g], s.length)

    def unit_pace(self, bank: int) -> int:
        """Cycles a MAC column now keeps ``bank``'s MAC unit busy (its format's pace)."""
        return self.banks[bank].mac_unit.pace[self.banks[bank].mac_unit.fmt]

    def gb_acts(self, col: int, fmt: int) -> np.ndarray:
        """The activation bytes a MAC of column ``col`` in format ``fmt`` reads: global-buffer columns
        ``col * r .. col * r + r - 1`` (mod ``gb_columns``), ``r = gb_columns_per_mac(fmt)``."""
        r = self.unit.gb_columns_per_mac(fmt)
        idx = [(col * r + k) % self.pim.gb_columns for k in range(r)]
        return self.gb[idx].reshape(-1)

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
            self._schedule_read(column_word(bk.read(h["col"])), p.timing.rd_latency)
        elif op == PimOp.WR:
            data = column_bytes(wword, p)
            for b in targets:
                self.banks[b].write(h["col"], data)
        elif op == PimOp.MAC:
            for b in targets:
                mu = self.banks[b].mac_unit
                mu.mac(h["col"], self.banks[b].read(h["col"]).copy(), self.gb_acts(h["col"], mu.fmt))
        elif op == PimOp.WRGB:
            self.gb[h["col"]] = column_bytes(wword, p)
        elif op == PimOp.RDMAC:
            self._schedule_read(pack_words(self.banks[h["bank"]].mac_unit.acc, ACC_BITS), p.timing.rdmac_latency)
        elif op == PimOp.CLRMAC:
            for b in targets:
                self.banks[b].mac_unit.clear()
        elif op == PimOp.CFR:
            reg, val = h["col"], h["row"]
            if reg in CFR_CHANNEL_REGS:
                self.cfr[reg] = val
            else:
                for b in targets:
                    self.banks[b].mac_unit.fmt = val

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
        for b in self.banks:
            b.mac_unit.step()
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

"""The PIM channel engine: executes command programs exactly and fast.

Each command is issued at its earliest legal cycle, computed in closed form from the timestamps of the commands that
constrain it (no Python work per idle cycle); a run-length command (``count`` > 1) is issued as a whole: element ``k``
at ``t0 + k * step``, because after the first element only the run's own column-to-column rules bind (see
:meth:`accel.emulator.units.pim.Timing.step`). The schedule is the one the per-cycle model
(``emulator/units/pim.py``, the RTL's twin) produces in wait mode with an always-valid command stream; tests prove them
equal on random programs. Numerics (functional mode) are vectorised over columns and banks with numpy and equal the
per-cycle model bit for bit.

Cycle 0 is the cycle the first command word is offered: as in the hardware, a command issues at the earliest in the
cycle after it reaches the channel's head register, and at most one command element issues per cycle.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, NamedTuple

import numpy as np

from accel.config import BitSerialConfig, DeviceConfig, PimConfig
from accel.errors import AccelError
from accel.isa import TABLES, Family, PimOp
from accel.numerics import DATATYPES

from .units.pim import (
    ACC_BITS, CFR_CHANNEL_REGS, CFR_DTYPE, CFR_SCALE, MacNumerics, PimChannel, PimIllegalError, PimRule,
    PimTimingError, Timing, describe, illegal_message, pack_slots, timing_message, unpack_slots,
)

__all__ = ["ChannelEngine", "DeviceEngine", "Issue", "RunStats", "PimProgram", "decode_program"]

_NEG = -(1 << 40)
_PIM = TABLES[Family.PIM]
_OPS = frozenset(int(o) for o in PimOp)


class Issue(NamedTuple):
    """Where a command went: its op, first and last element's cycles, elements, and cycles between elements."""

    op: int
    first: int
    last: int
    count: int
    step: int


@dataclass
class RunStats:
    """Totals of a run: cycles, per-bank open-row and MAC cycles, MAC lane operations."""

    cycles: int
    bank_active_cycles: np.ndarray
    bank_mac_elements: np.ndarray
    mac_lane_ops: int
    commands: int
    elements: int
    read_words: list[tuple[int, int]] = field(default_factory=list)


_STEP_CACHE: dict[Timing, list[tuple[int, int]]] = {}


def _steps_of(t: Timing) -> list[tuple[int, int]]:
    """Run step per op code (single-bank, all-bank), computed once per timing."""
    if t not in _STEP_CACHE:
        _STEP_CACHE[t] = [(t.step(op, False), t.step(op, True)) for op in range(16)]
    return _STEP_CACHE[t]


class ChannelEngine:
    """One channel, executed command by command at the earliest legal cycles.

    Parameters
    ----------
    pim, bitserial:
        The channel's configuration (``bitserial`` needed for ``lane="bitserial"`` in functional mode).
    functional:
        Keep data and compute MAC results (False: timing only, faster).
    record_reads:
        Keep ``(cycle, word)`` of every read beat (RD columns, RDMAC registers) in :attr:`reads`.
    """

    def __init__(self, pim: PimConfig, bitserial: BitSerialConfig | None = None, functional: bool = True,
                 record_reads: bool = True) -> None:
        self.pim = pim
        self.t = Timing.of(pim.timing)
        self.functional = functional
        self.record_reads = record_reads and functional
        # the per-cycle model's storage, numerics and legality checks are reused (never its timing); a timing-only
        # engine builds it only when it needs to name the reason of an illegal command or check a CFR value
        self._bitserial = bitserial
        self._model_obj: PimChannel | None = None
        self._numerics: MacNumerics | None = None
        if pim.lane == "bitserial" and bitserial is None:
            raise AccelError("a channel with lane = 'bitserial' needs the device's BitSerialConfig (its datatypes "
                             "set the MAC pace and the numerics): pass bitserial=device.bitserial")
        self._data = self._model if functional else None
        self._steps = _steps_of(self.t)
        self._lane_terms = ({c: DATATYPES[n].terms for n, c in bitserial.dtype_codes.items()}
                            if bitserial is not None and pim.lane == "bitserial" else {})
        self._default_dtype = (bitserial.dtype_codes[bitserial.datatypes[0]]
                               if bitserial is not None and pim.lane == "bitserial" else 0)
        self.reset()

    @property
    def _model(self) -> PimChannel:
        if self._model_obj is None:
            if self.pim.lane == "bitserial" and self._bitserial is None:
                from dataclasses import replace

                self._model_obj = PimChannel(replace(self.pim, lane="int8"), None)  # CFR datatypes not checked
            else:
                self._model_obj = PimChannel(self.pim, self._bitserial)
        return self._model_obj

    def _terms_of(self, dtype: int) -> int:
        return self._lane_terms.get(dtype, 1)

    def reset(self) -> None:
        p = self.pim
        nb, ng = p.banks, p.bank_groups
        self.bpg = p.banks_per_group
        self.group_of = [b // self.bpg for b in range(nb)]
        # Timestamps (cycles) of the last command of each kind. Per bank/group values hold single-bank commands;
        # all-bank commands set the ``ab_*`` value instead (O(1)); a bank's effective time is the larger of the two
        # (times only grow). ``*_any`` is the latest over all banks, which answers all-bank queries in O(1).
        self.act, self.pre, self.rtp, self.wr = [_NEG] * nb, [_NEG] * nb, [_NEG] * nb, [_NEG] * nb
        self.ab_act = self.ab_pre = self.ab_rtp = self.ab_wr = _NEG
        self.act_any = self.pre_any = self.rtp_any = self.wr_any = _NEG
        self.act_g, self.col_g = [_NEG] * ng, [_NEG] * ng
        self.ab_col_g = _NEG
        self.colg_any = _NEG        # last bank column command (RD/WR/MAC)
        self.col_any = _NEG         # last column-class command (also WRGB, RDMAC)
        self.mac_ab = _NEG
        self.ref = _NEG
        self.bus_free = _NEG        # first cycle a new read's data may start
        self.faw: deque[int] = deque(maxlen=4)
        self.open = [False] * nb
        self.n_open = 0
        self.row = [0] * nb
        self.open_since = [0] * nb
        self.active_cycles = [0] * nb
        self.mac_elements = [0] * nb
        self.ab_mac_elements = 0
        # bit-serial lanes: a bank's MAC lanes are busy for terms(datatype) cycles per column
        self.terms = [self._terms_of(self._default_dtype)] * nb
        self.mac_ready = [_NEG] * nb
        self.next = 1               # earliest cycle of the next command (head register latency)
        self.last_data = -1
        self.commands = 0
        self.elements = 0
        self.reads: list[tuple[int, int]] = []
        self._stats_key = id(self)
        if self._model_obj is not None:
            self._model_obj.reset()

    # ---------------------------------------------------------------------------------------------------------------
    def _eff(self, name: str) -> list[int]:
        ab = getattr(self, "ab_" + name)
        return [max(v, ab) for v in getattr(self, name)]

    def constraints(self, op: PimOp, all_banks: int, bank: int) -> list[tuple[PimRule, int, int | None]]:
        """(rule, first legal cycle, bank) of every timing rule on the first element of a command, in rule order
        (the detailed form used to check a given cycle and to name the bank; :meth:`issue` uses a fast form)."""
        t = self.t
        out: list[tuple[PimRule, int, int | None]] = []
        nb = self.pim.banks
        targets = range(nb) if all_banks and op != PimOp.RDMAC else (bank,)
        groups = {self.group_of[b] for b in targets}
        col_g = [max(v, self.ab_col_g) for v in self.col_g]
        act_g = [max(v, self.ab_act) for v in self.act_g]

        def per_bank(rule: PimRule, times: list[int], n: int, banks: Iterable[int]) -> None:
            best, bb = _NEG, None
            for b in banks:
                if times[b] > best:
                    best, bb = times[b], b
            if bb is not None:
                out.append((rule, best + n, bb))

        if op == PimOp.ACT:
            per_bank(PimRule.RP, self._eff("pre"), t.rp, targets)
            per_bank(PimRule.RC, self._eff("act"), t.rc, targets)
            out.append((PimRule.RRD_S, self.act_any + t.rrd_s, None))
            out.append((PimRule.RRD_L, max(act_g[g] for g in groups) + t.rrd_l, None))
            if (not all_banks or t.faw_all_bank) and len(self.faw) == 4:
                out.append((PimRule.FAW, self.faw[0] + t.faw, None))
            out.append((PimRule.RFC, self.ref + t.rfc, None))
        elif op == PimOp.PRE:
            opened = [b for b in targets if self.open[b]]
            per_bank(PimRule.RAS, self._eff("act"), t.ras, opened)
            per_bank(PimRule.WR, self._eff("wr"), t.wr, opened)
            per_bank(PimRule.RTP, self._eff("rtp"), t.rtp, opened)
        elif op in (PimOp.RD, PimOp.WR, PimOp.MAC):
            n, rule = {PimOp.RD: (t.rcd_rd, PimRule.RCD_RD), PimOp.WR: (t.rcd_wr, PimRule.RCD_WR),
                       PimOp.MAC: (t.rcd_mac, PimRule.RCD_MAC)}[op]
            per_bank(rule, self._eff("act"), n, targets)
            out.append((PimRule.CCD_S, self.col_any + t.ccd_s, None))
            out.append((PimRule.CCD_L, max(col_g[g] for g in groups) + t.ccd_l, None))
            if op == PimOp.MAC and all_banks:
                out.append((PimRule.CCD_AB, self.mac_ab + t.ccd_ab, None))
            if op == PimOp.MAC:
                per_bank(PimRule.MAC_BUSY, self.mac_ready, 0, targets)
            if op == PimOp.RD:
                out.append((PimRule.BUS, self.bus_free - t.rd_latency, None))
        elif op == PimOp.WRGB:
            out.append((PimRule.CCD_S, self.col_any + t.ccd_s, None))
        elif op == PimOp.RDMAC:
            out.append((PimRule.CCD_S, self.col_any + t.ccd_s, None))
            out.append((PimRule.BUS, self.bus_free - t.rdmac_latency, None))
        elif op == PimOp.REF:
            per_bank(PimRule.RP, self._eff("pre"), t.rp, range(nb))
            out.append((PimRule.RFC, self.ref + t.rfc, None))
        return out

    def _earliest(self, op: int, ab: int, b: int) -> int:
        """The first cycle all timing rules allow (fast form of :meth:`constraints`)."""
        t = self.t
        if op == 6:  # MAC
            if ab:
                return max(self.act_any + t.rcd_mac, self.col_any + t.ccd_s, self.colg_any + t.ccd_l,
                           self.mac_ab + t.ccd_ab, max(self.mac_ready))
            g = self.group_of[b]
            return max(max(self.act[b], self.ab_act) + t.rcd_mac, self.col_any + t.ccd_s,
                       max(self.col_g[g], self.ab_col_g) + t.ccd_l, self.mac_ready[b])
        if op == 1:  # ACT
            if ab:
                r = max(self.pre_any + t.rp, self.act_any + t.rc, self.act_any + t.rrd_l, self.ref + t.rfc)
                if t.faw_all_bank and len(self.faw) == 4:
                    r = max(r, self.faw[0] + t.faw)
                return r
            g = self.group_of[b]
            r = max(max(self.pre[b], self.ab_pre) + t.rp, max(self.act[b], self.ab_act) + t.rc,
                    self.act_any + t.rrd_s, max(self.act_g[g], self.ab_act) + t.rrd_l, self.ref + t.rfc)
            if len(self.faw) == 4:
                r = max(r, self.faw[0] + t.faw)
            return r
        if op == 2:  # PRE
            if ab and self.n_open == self.pim.banks:
                return max(self.act_any + t.ras, self.wr_any + t.wr, self.rtp_any + t.rtp)
            return max([c[1] for c in self.constraints(PimOp.PRE, ab, b)], default=_NEG)
        if op == 3 or op == 4:  # RD, WR
            n = t.rcd_rd if op == 3 else t.rcd_wr
            if ab:
                r = max(self.act_any + n, self.col_any + t.ccd_s, self.colg_any + t.ccd_l)
            else:
                g = self.group_of[b]
                r = max(max(self.act[b], self.ab_act) + n, self.col_any + t.ccd_s,
                        max(self.col_g[g], self.ab_col_g) + t.ccd_l)
            if op == 3:
                r = max(r, self.bus_free - t.rd_latency)
            return r
        if op == 5:  # WRGB
            return self.col_any + t.ccd_s
        if op == 7:  # RDMAC
            return max(self.col_any + t.ccd_s, self.bus_free - t.rdmac_latency)
        if op == 9:  # REF
            return max(self.pre_any + t.rp, self.ref + t.rfc)
        return _NEG

    def _legal(self, op: int, ab: int, b: int, row: int, col: int, count: int) -> bool:
        """Fast legality test; the per-cycle model's rules name the reason when this says no."""
        p = self.pim
        if op not in _OPS:
            return False
        if op in (3, 4, 6):  # RD WR MAC
            if ab:
                return op != 3 and self.n_open == p.banks and col + count <= p.columns
            return b < p.banks and self.open[b] and col + count <= p.columns
        if op == 1:
            if row >= p.rows:
                return False
            return self.n_open == 0 if ab else (b < p.banks and not self.open[b])
        if op == 2 or op == 8:
            return bool(ab) or b < p.banks
        if op == 5:
            return col + count <= p.gb_columns
        if op == 7:
            return b + count <= p.banks
        if op == 9:
            return self.n_open == 0
        if op == 10:
            if self._numerics is None:
                self._numerics = MacNumerics(p if p.lane == "int8" or self._bitserial else replace(p, lane="int8"),
                                             self._bitserial)
            return (bool(ab) or b < p.banks) and (col in CFR_CHANNEL_REGS or col in (CFR_DTYPE, CFR_SCALE)) \
                and self._numerics.cfr_ok(col, row)
        return True  # NOP

    def _illegal(self, op: int, f: dict[str, int]) -> tuple[PimRule, int | None]:
        # the legality rules are the per-cycle model's; its banks mirror the engine's open rows
        m = self._model
        for b, bk in enumerate(m.banks):
            bk.open = self.open[b]
        return m._illegal({"family": int(Family.PIM), "op": op, **f})

    # ---------------------------------------------------------------------------------------------------------------
    def issue(self, op: PimOp | int, all_banks: int = 0, bank: int = 0, row: int = 0, col: int = 0, count: int = 0,
              data: Any = None, at: int | None = None) -> Issue:
        """Issue one command (run-length form allowed) at its earliest legal cycle, or check it at cycle ``at``.

        ``data``: for WR/WRGB, ``count`` column words (ints) or an array of ``count`` x ``mac_lanes`` slots.
        Raises :class:`PimIllegalError` for illegal commands and, with ``at``, :class:`PimTimingError` if a rule
        is not met at ``at`` (naming the rule, the bank and the cycles missing).
        """
        op_i = int(op)
        count = count if count > 0 else 1
        if op_i == 7 and all_banks:
            all_banks, bank, count = 0, 0, self.pim.banks
        if not self._legal(op_i, all_banks, bank, row, col, count):
            f = {"all_banks": int(all_banks), "channel": 0, "bank": int(bank), "row": int(row), "col": int(col),
                 "count": count}
            now = self.next if at is None else at
            rule, rb = self._illegal(op_i, f)
            if rule == PimRule.NONE:  # pragma: no cover - the fast and detailed legality rules disagree
                raise AssertionError(f"engine legality disagrees with the model on {f}")
            name = describe(PimOp(op_i), f) if op_i in _OPS else f"op {op_i}"
            raise PimIllegalError(f"{name} at cycle {now}: {illegal_message(rule, rb, self.pim)}", rule, rb, now)
        if at is None:
            t0 = self._earliest(op_i, all_banks, bank)
            if t0 < self.next:
                t0 = self.next
            step = self._step(op_i, all_banks, bank)
            last = t0 + (count - 1) * step
            self._apply(op_i, all_banks, bank, row, col, t0, last, step, count, data)
            self.next = last + 1
            self.commands += 1
            self.elements += count
            return Issue(op_i, t0, last, count, step)
        if True:
            op = PimOp(op_i)
            f = {"all_banks": int(all_banks), "channel": 0, "bank": int(bank), "row": int(row), "col": int(col),
                 "count": count}
            if at < self.next:
                raise AccelError(f"{describe(op, f)}: cycle {at} is before the channel can take a command "
                                 f"(cycle {self.next}: one command element per cycle, after the previous one)")
            for r, ready, b in self.constraints(op, all_banks, bank):
                if ready > at:
                    raise PimTimingError(timing_message(op, f, r, ready - at, b, at, self.pim.timing), r,
                                         ready - at, b, at)
            t0 = at
        step = self._step(op_i, all_banks, bank)
        last = t0 + (count - 1) * step
        self._apply(op_i, all_banks, bank, row, col, t0, last, step, count, data)
        self.next = last + 1
        self.commands += 1
        self.elements += count
        return Issue(op_i, t0, last, count, step)

    def _step(self, op: int, ab: int, bank: int) -> int:
        """Cycles between a run's elements: the column rules, and for bit-serial MACs the banks' terms."""
        step = self._steps[op][1 if ab else 0]
        if op == 6 and self._lane_terms:
            step = max(step, max(self.terms) if ab else self.terms[bank])
        return step

    # ---------------------------------------------------------------------------------------------------------------
    def _apply(self, op: int, ab: int, bank: int, row: int, col: int, t0: int, last: int, step: int, count: int,
               data: Any) -> None:
        t = self.t
        p = self.pim
        d = self._data
        if op == 6:  # MAC
            self.col_any = self.colg_any = self.rtp_any = last
            if ab:
                self.ab_rtp = self.ab_col_g = self.mac_ab = last
                self.ab_mac_elements += count
                if self._lane_terms:
                    self.mac_ready = [last + n for n in self.terms]
            else:
                self.rtp[bank] = last
                self.col_g[self.group_of[bank]] = last
                self.mac_elements[bank] += count
                if self._lane_terms:
                    self.mac_ready[bank] = last + self.terms[bank]
            if d is not None:
                self._mac(d, range(p.banks) if ab else (bank,), col, count)
        elif op == 1:  # ACT
            self.act_any = t0
            targets = range(p.banks) if ab else (bank,)
            if ab:
                self.ab_act = t0
            else:
                self.act[bank] = t0
                self.act_g[self.group_of[bank]] = t0
            for b in targets:
                self.open[b] = True
                self.row[b] = row
                self.open_since[b] = t0
                if d is not None:
                    d.banks[b].open, d.banks[b].row = True, row
            self.n_open += len(targets)
            if not ab or t.faw_all_bank:
                self.faw.append(t0)
        elif op == 2:  # PRE
            if ab and self.n_open == p.banks:
                self.ab_pre = self.pre_any = t0
                closing = range(p.banks)
            else:
                closing = [b for b in (range(p.banks) if ab else (bank,)) if self.open[b]]
                for b in closing:
                    self.pre[b] = self.pre_any = t0
            for b in closing:
                self.open[b] = False
                self.active_cycles[b] += t0 - self.open_since[b]
                if d is not None:
                    d.banks[b].open = False
            self.n_open -= len(closing)
        elif op == 3:  # RD
            self.col_any = self.colg_any = self.rtp_any = last
            self.rtp[bank] = last
            self.col_g[self.group_of[bank]] = last
            self.bus_free = last + t.rd_latency + t.bl
            self.last_data = max(self.last_data, last + t.rd_latency)
            if self.record_reads:
                rows = d.banks[bank].row_data(self.row[bank])
                for k in range(count):
                    self.reads.append((t0 + k * step + t.rd_latency, pack_slots(rows[col + k], p.slot_bits)))
        elif op == 4:  # WR
            self.col_any = self.colg_any = self.wr_any = last
            if ab:
                self.ab_wr = self.ab_col_g = last
            else:
                self.wr[bank] = last
                self.col_g[self.group_of[bank]] = last
            if d is not None:
                slots = self._slots(data, count)
                for b in (range(p.banks) if ab else (bank,)):
                    d.banks[b].row_data(self.row[b])[col:col + count] = slots
        elif op == 5:  # WRGB
            self.col_any = last
            if d is not None:
                d.gb[col:col + count] = self._slots(data, count)
        elif op == 7:  # RDMAC
            self.col_any = last
            self.bus_free = last + t.rdmac_latency + t.bl
            self.last_data = max(self.last_data, last + t.rdmac_latency)
            if self.record_reads:
                for k in range(count):
                    self.reads.append((t0 + k * step + t.rdmac_latency, pack_slots(d.banks[bank + k].acc, ACC_BITS)))
        elif op == 8:  # CLRMAC
            if d is not None:
                for b in (range(p.banks) if ab else (bank,)):
                    d.banks[b].acc[:] = 0
        elif op == 9:  # REF
            self.ref = t0
        elif op == 10:  # CFR: the datatype sets the bit-serial lanes' pace; datatype and scale set the numerics
            if col == CFR_DTYPE and self._lane_terms:
                for b in (range(p.banks) if ab else (bank,)):
                    self.terms[b] = self._terms_of(row)
            if d is not None:
                d._issue({"op": 10, "all_banks": ab, "bank": bank, "row": row, "col": col}, 0)

    def _slots(self, data: Any, count: int) -> np.ndarray:
        p = self.pim
        if data is None:
            raise AccelError(f"WR/WRGB of {count} column(s) needs {count} data word(s); pass data=")
        if isinstance(data, np.ndarray) and data.ndim == 2:
            arr = data.astype(np.int64) & ((1 << p.slot_bits) - 1)
        else:
            arr = np.stack([unpack_slots(int(w), p.mac_lanes, p.slot_bits) for w in data])
        if arr.shape != (count, p.mac_lanes):
            raise AccelError(f"WR/WRGB of {count} column(s) got data of shape {arr.shape}; expected "
                             f"({count}, {p.mac_lanes}) slots or {count} words")
        return arr

    def _mac(self, d: PimChannel, targets: Iterable[int], col: int, count: int) -> None:
        """A MAC run on ``targets``, vectorised over banks, columns and lanes (same numerics as the model's)."""
        p = self.pim
        n = d.numerics
        targets = list(targets)
        banks = [d.banks[b] for b in targets]
        gcols = (np.arange(col, col + count) % p.gb_columns)
        x = n.acts(d.gb[gcols])                                            # count x lanes
        raw = np.stack([bk.row_data(self.row[b])[col:col + count] for b, bk in zip(targets, banks)])
        if n.bitserial is None:
            w = n.weights(raw, 0)
        else:
            dts = [bk.dtype for bk in banks]
            if len(set(dts)) == 1:
                w = n.weights(raw, dts[0])
            else:
                w = np.empty_like(raw)
                for dt in set(dts):
                    sel = [i for i, v in enumerate(dts) if v == dt]
                    w[sel] = n.weights(raw[sel], dt)
        s = np.einsum("bcl,cl->bl", w, x)                                  # banks x lanes
        if n.bitserial is not None:
            s = s * np.array([bk.scale for bk in banks], dtype=np.int64)[:, None]
        acc = n.wrap(np.stack([bk.acc for bk in banks]) + s)
        for i, bk in enumerate(banks):
            bk.acc = acc[i]

    # ---------------------------------------------------------------------------------------------------------------
    _STAMPS = ("act", "pre", "rtp", "wr", "act_g", "col_g", "open_since", "mac_ready")
    _SCALARS = ("ab_act", "ab_pre", "ab_rtp", "ab_wr", "act_any", "pre_any", "rtp_any", "wr_any", "ab_col_g",
                "colg_any", "col_any", "mac_ab", "ref", "bus_free", "last_data")

    def _horizon(self) -> int:
        t = self.t
        return max(t.rcd_rd, t.rcd_wr, t.rcd_mac, t.rp, t.ras, t.rc, t.rrd_s, t.rrd_l, t.faw, t.ccd_s, t.ccd_l,
                   t.ccd_ab, t.wr, t.rtp, t.rfc, t.rd_latency + t.bl, t.rdmac_latency + t.bl) + 1

    def _relative_state(self) -> tuple:
        """Everything that decides future timing, relative to ``next``; stamps older than any rule's reach are
        equivalent, so they are clamped."""
        now = self.next
        h = self._h if hasattr(self, "_h") else self._horizon()
        self._h = h
        lo = now - h
        stamps = (self.act + self.pre + self.rtp + self.wr + self.act_g + self.col_g + list(self.faw) + self.mac_ready
                  + [self.ab_act, self.ab_pre, self.ab_rtp, self.ab_wr, self.act_any, self.pre_any, self.rtp_any,
                     self.wr_any, self.ab_col_g, self.colg_any, self.col_any, self.mac_ab, self.ref, self.bus_free,
                     self.last_data])
        return ([v - now if v > lo else -h for v in stamps], len(self.faw), list(self.open), self.n_open,
                list(self.terms),
                # an open bank's opening time decides its active-cycle count: only shift-invariant if it moves too
                [v - now for v, o in zip(self.open_since, self.open) if o])

    def _counters(self) -> tuple:
        return (list(self.active_cycles), list(self.mac_elements), self.ab_mac_elements, self.commands,
                self.elements)

    def _shift(self, delta: int, reps: int, c0: tuple, c1: tuple) -> None:
        """Advance the whole state by ``reps`` periods of ``delta`` cycles (counters grow by the period's change)."""
        d = delta * reps
        for name in self._STAMPS:
            setattr(self, name, [v + d for v in getattr(self, name)])
        for name in self._SCALARS:
            setattr(self, name, getattr(self, name) + d)
        self.faw = deque((v + d for v in self.faw), maxlen=4)
        self.next += d
        self.active_cycles = [a + reps * (b - a0) for a, a0, b in zip(self.active_cycles, c0[0], c1[0])]
        self.mac_elements = [a + reps * (b - a0) for a, a0, b in zip(self.mac_elements, c0[1], c1[1])]
        self.ab_mac_elements += reps * (c1[2] - c0[2])
        self.commands += reps * (c1[3] - c0[3])
        self.elements += reps * (c1[4] - c0[4])

    def run_table(self, table: list[list[int]], data: dict[int, Any] | None = None, ids: list[int] | None = None,
                  periodic: bool = True, sig: list | None = None) -> None:
        """Issue commands given as ``[op, all_banks, bank, row, col, count]`` rows (``data`` by position).

        ``periodic`` (timing-only engines): when a block of commands repeats (equal apart from row addresses) and two
        consecutive repetitions leave the same relative state, every further repetition is the same shift in time,
        so the engine jumps over them in closed form. Cycle counts and statistics are those of issuing every command.
        """
        data = data or {}
        n = len(table)
        periodic = periodic and self._data is None
        if periodic:
            if sig is None:
                sig = [(r[0], r[1], r[2], r[4], r[5]) for r in table]
            nxt = [n] * n
            seen: dict[tuple, int] = {}
            for i in range(n - 1, -1, -1):
                nxt[i] = seen.get(sig[i], n)
                seen[sig[i]] = i
        i = 0
        issue = self._issue_lean
        while i < n:
            if periodic and nxt[i] < n:
                p = nxt[i] - i
                reps = 1
                while i + (reps + 1) * p <= n and sig[i + reps * p:i + (reps + 1) * p] == sig[i:i + p]:
                    reps += 1
                if reps >= 3:
                    i = self._run_periodic(table, i, p, reps, sig)
                    continue
            r = table[i]
            issue(r[0], r[1], r[2], r[3], r[4], r[5], data.get(i if ids is None else ids[i]))
            i += 1

    def _issue_lean(self, op: int, ab: int, bank: int, row: int, col: int, count: int, data: Any) -> None:
        """:meth:`issue` at the earliest cycle, without building its result (the engine's inner loop)."""
        if count < 1:
            count = 1
        if op == 7 and ab:
            ab, bank, count = 0, 0, self.pim.banks
        if not self._legal(op, ab, bank, row, col, count):
            self.issue(op, ab, bank, row, col, count, data)  # raises with the reason
        t0 = self._earliest(op, ab, bank)
        if t0 < self.next:
            t0 = self.next
        step = self._step(op, ab, bank)
        last = t0 + (count - 1) * step
        self._apply(op, ab, bank, row, col, t0, last, step, count, data)
        self.next = last + 1
        self.commands += 1
        self.elements += count

    def _run_periodic(self, table: list[list[int]], i: int, p: int, reps: int, sig: list) -> int:
        # S_k: relative state before repetition k. If S_k == S_(k+1), every later repetition repeats the same shift.
        done = 0
        prev_state, prev_next, prev_counters = self._relative_state(), self.next, self._counters()
        while done < reps:
            # a repetition may itself hold repeated blocks (nested loops): run it through run_table
            self.run_table(table[i + done * p:i + (done + 1) * p], None, None, True,
                           sig[i + done * p:i + (done + 1) * p])
            done += 1
            state, counters = self._relative_state(), self._counters()
            if state == prev_state and done < reps:
                self._shift(self.next - prev_next, reps - done, prev_counters, counters)
                # rows differ between repetitions: the open rows after the jump are the last repetition's
                for r in table[i + (reps - 1) * p:i + reps * p]:
                    if r[0] == 1:
                        for b in (range(self.pim.banks) if r[1] else (r[2],)):
                            self.row[b] = r[3]
                return i + reps * p
            prev_state, prev_next, prev_counters = state, self.next, counters
        return i + reps * p

    def load_row(self, bank: int, row: int, slots: np.ndarray) -> None:
        """Host preload of a DRAM row (not timed): ``columns`` x ``mac_lanes`` slot values."""
        self._data.banks[bank].row_data(row)[:] = np.asarray(slots, dtype=np.int64) & ((1 << self.pim.slot_bits) - 1)

    def mac_registers(self) -> np.ndarray:
        """Every bank's MAC register now (banks x lanes, signed)."""
        return np.stack([b.acc.copy() for b in self._data.banks])

    @property
    def cycles(self) -> int:
        """Cycles until the last element issued and the last read data left."""
        return max(self.next, self.last_data + 1)

    # ---- hook of the system engine (emulator/system.py) ----------------------------------------------------------
    def completion(self) -> int:
        """First cycle by which the data of every read issued so far has left the pins and every bit-serial MAC's
        lanes are free (the system engine adds the cycle after the last issue)."""
        return max(self.last_data + 1, max(self.mac_ready))

    def stats(self) -> RunStats:
        end = self.cycles
        active = np.array([a + ((end - s) if o else 0) for a, s, o in
                           zip(self.active_cycles, self.open_since, self.open)], dtype=np.int64)
        macs = np.array(self.mac_elements, dtype=np.int64) + self.ab_mac_elements
        return RunStats(end, active, macs, int(macs.sum()) * self.pim.mac_lanes, self.commands, self.elements,
                        list(self.reads))


@dataclass
class PimProgram:
    """A device program: 64-bit command words (numpy ``uint64``) and, by command index, the data words of WR/WRGB
    commands (a list of column words or a ``count x mac_lanes`` array of slots)."""

    words: np.ndarray
    data: dict[int, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, program: Any) -> "PimProgram":
        """From a PimProgram, a sequence of words, or a sequence of ``(word, data)`` pairs."""
        if isinstance(program, PimProgram):
            return program
        if isinstance(program, np.ndarray):
            return cls(program.astype(np.uint64))
        words, data = [], {}
        for i, item in enumerate(program):
            if isinstance(item, tuple):
                words.append(int(item[0]))
                if item[1] is not None:
                    data[i] = item[1]
            else:
                words.append(int(item))
        return cls(np.array(words, dtype=np.uint64), data)

    def check(self) -> None:
        """Reject words that are not PIM commands (family PIM, a PIM op, bits above the fields zero)."""
        w = self.words
        off_f, wf = _PIM.offsets()["family"]
        off_o, wo = _PIM.offsets()["op"]
        fam = (w >> np.uint64(off_f)) & np.uint64((1 << wf) - 1)
        op = (w >> np.uint64(off_o)) & np.uint64((1 << wo) - 1)
        bad = np.nonzero((fam != int(Family.PIM)) | (op > max(_OPS)) | ((w >> np.uint64(_PIM.bits)) != 0))[0]
        if len(bad):
            i = int(bad[0])
            raise AccelError(f"command {i}: word {int(w[i]):#018x} is not a PIM command (family PIM, a PIM op, bits "
                             f"above {_PIM.bits} zero); encode it with accel.isa.encode('pim', ...)")

    def fields(self) -> dict[str, np.ndarray]:
        """Every field of every word, vectorised (int64 arrays); rejects words that are not PIM commands."""
        w = self.words
        out = {}
        for name, (off, width) in _PIM.offsets().items():
            out[name] = ((w >> np.uint64(off)) & np.uint64((1 << width) - 1)).astype(np.int64)
        # PIM ops are 0..max (contiguous), the family code of PIM is 0
        bad = np.nonzero((out["family"] != int(Family.PIM)) | (out["op"] > max(_OPS))
                         | ((w >> np.uint64(_PIM.bits)) != 0))[0]
        if len(bad):
            i = int(bad[0])
            raise AccelError(f"command {i}: word {int(w[i]):#018x} is not a PIM command (family PIM, a PIM op, bits "
                             f"above {_PIM.bits} zero); encode it with accel.isa.encode('pim', ...)")
        return out


def decode_program(words: Iterable[int]) -> list[dict[str, int]]:
    """Command words -> decoded PIM fields (raises :class:`~accel.errors.AccelError` for words that are not PIM)."""
    f = PimProgram.of(list(words)).fields()
    names = ("op", "all_banks", "channel", "bank", "row", "col", "count")
    cols = [f[n].tolist() for n in names]
    return [dict(zip(names, vals)) for vals in zip(*cols)]


class DeviceEngine:
    """All channels of a device; commands are routed by their ``channel`` field, channels run independently.

    Parameters
    ----------
    device:
        The device description.
    functional:
        Keep data and numerics (False: timing only).
    dedup:
        Timing-only runs: channels whose command streams are equal apart from the channel field have equal
        schedules, so each distinct stream is executed once (cycle counts are unchanged).
    periodic:
        Timing-only runs: jump over repeated blocks in closed form (:meth:`ChannelEngine.run_table`).
    """

    def __init__(self, device: DeviceConfig, functional: bool = True, dedup: bool = True,
                 periodic: bool = True) -> None:
        self.device = device
        self.functional = functional
        self.dedup = dedup and not functional
        self.periodic = periodic and not functional
        p = device.pim
        self._bs = device.bitserial if p.lane == "bitserial" else None
        # timing-only engines are built when a channel first runs (equal channels share one)
        self.channels: list[ChannelEngine | None] = (
            [ChannelEngine(p, self._bs, True) for _ in range(p.channels)] if functional else [None] * p.channels)

    def _channel(self, c: int) -> ChannelEngine:
        if self.channels[c] is None:
            self.channels[c] = ChannelEngine(self.device.pim, self._bs, self.functional)
        return self.channels[c]

    def run(self, program: Any) -> RunStats:
        """Run a program (:class:`PimProgram`, words, or ``(word, data)`` pairs). Returns device totals."""
        if getattr(self, "_ran", False):
            raise AccelError("a DeviceEngine runs one program (channels with equal streams share state); make a new "
                             "DeviceEngine for the next program")
        self._ran = True
        prog = PimProgram.of(program)
        w = prog.words
        offs = _PIM.offsets()

        def field_of(words: np.ndarray, name: str) -> np.ndarray:
            off, width = offs[name]
            return ((words >> np.uint64(off)) & np.uint64((1 << width) - 1)).astype(np.int64)

        prog.check()
        ch = field_of(w, "channel")
        nch = len(self.channels)
        if len(ch) and int(ch.max()) >= nch:
            i = int(np.argmax(ch >= nch))
            raise AccelError(f"command {i} addresses channel {int(ch[i])}; the device has {nch} channels "
                             f"(0..{nch - 1})")
        order = np.argsort(ch, kind="stable")
        bounds = np.searchsorted(ch[order], np.arange(nch + 1))
        # a command's timing signature: the word without its channel and row (rows do not change the schedule);
        # functional runs need every channel
        rep = list(range(nch))
        if self.dedup:
            drop = np.uint64((((1 << offs["channel"][1]) - 1) << offs["channel"][0])
                             | (((1 << offs["row"][1]) - 1) << offs["row"][0]))
            keyed = (w & ~drop)[order]
            counts = np.diff(bounds)
            if len(set(counts.tolist())) == 1 and counts[0] > 0:
                rows = keyed.reshape(nch, -1)
                _, first, inverse = np.unique(rows.view(np.dtype((np.void, rows.shape[1] * 8))).ravel(),
                                              return_index=True, return_inverse=True)
                rep = [int(first[k]) for k in inverse.ravel()]
            else:
                seen: dict[bytes, int] = {}
                for c in range(nch):
                    rep[c] = seen.setdefault(keyed[bounds[c]:bounds[c + 1]].tobytes(), c)
            # rows are left out of the signature, so a channel whose ACT names a row that does not exist runs itself
            # (and raises its error)
            acts = field_of(w, "op") == int(PimOp.ACT)
            for c in set(ch[acts & (field_of(w, "row") >= self.device.pim.rows)].tolist()):
                rep[c] = c
        for c in range(nch):
            if rep[c] != c:
                self.channels[c] = self._channel(rep[c])
                continue
            idx = order[bounds[c]:bounds[c + 1]]
            sub = w[idx]
            cols = [field_of(sub, n) for n in ("op", "all_banks", "bank", "row", "col", "count")]
            table = np.stack(cols, axis=1).tolist()
            sig = None
            if self.periodic:
                op, ab, bank, _, col, count = cols
                sig = (op | (ab << 4) | (bank << 5) | (col << 12) | (count << 24)).tolist()
            self._channel(c).run_table(table, prog.data, idx.tolist(), periodic=self.periodic, sig=sig)
        return self.stats()

    def stats(self) -> RunStats:
        cache: dict[int, RunStats] = {}
        per = []
        for i in range(len(self.channels)):
            c = self._channel(i)
            key = c._stats_key
            if key not in cache:
                cache[key] = c.stats()
            per.append(cache[key])
        return RunStats(max(s.cycles for s in per), np.stack([s.bank_active_cycles for s in per]),
                        np.stack([s.bank_mac_elements for s in per]), sum(s.mac_lane_ops for s in per),
                        sum(s.commands for s in per), sum(s.elements for s in per))

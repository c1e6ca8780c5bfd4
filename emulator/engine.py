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
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from accel.config import BitSerialConfig, DeviceConfig, PimConfig
from accel.errors import AccelError
from accel.isa import TABLES, Family, PimOp

from .units.pim import (
    ACC_BITS, CFR_CHANNEL_REGS, CFR_DTYPE, PimChannel, PimIllegalError, PimRule, PimTimingError, Timing, describe,
    illegal_message, pack_slots, timing_message, unpack_slots,
)

__all__ = ["ChannelEngine", "DeviceEngine", "Issue", "RunStats", "decode_program"]

_NEG = -(1 << 40)
_PIM = TABLES[Family.PIM]
_OPS = frozenset(int(o) for o in PimOp)


@dataclass
class Issue:
    """Where a command went: first and last element's cycles, and its read data cycles (RD/RDMAC)."""

    op: PimOp
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
        # the per-cycle model's storage, numerics and legality checks are reused (never its timing)
        if pim.lane == "bitserial" and bitserial is None:
            if functional:
                raise AccelError("a functional engine with lane = 'bitserial' needs the device's BitSerialConfig")
            from dataclasses import replace

            self._model = PimChannel(replace(pim, lane="int8"), None)  # CFR datatype values are not checked
        else:
            self._model = PimChannel(pim, bitserial)
        self._data = self._model if functional else None
        self.reset()

    def reset(self) -> None:
        p = self.pim
        nb, ng = p.banks, p.bank_groups
        self.bpg = p.banks_per_group
        self.act = [_NEG] * nb
        self.pre = [_NEG] * nb
        self.rtp = [_NEG] * nb     # last RD or MAC
        self.wr = [_NEG] * nb
        self.open = [False] * nb
        self.row = [0] * nb
        self.open_since = [0] * nb
        self.active_cycles = [0] * nb
        self.mac_elements = [0] * nb
        self.act_g = [_NEG] * ng
        self.col_g = [_NEG] * ng
        self.act_any = _NEG
        self.col_any = _NEG
        self.mac_ab = _NEG
        self.ref = _NEG
        self.bus_free = _NEG        # first cycle a new read's data may start
        self.faw: deque[int] = deque(maxlen=4)
        self.next = 1               # earliest cycle of the next command (head register latency)
        self.last_data = -1
        self.commands = 0
        self.elements = 0
        self.reads: list[tuple[int, int]] = []
        self._model.reset()

    # ---------------------------------------------------------------------------------------------------------------
    def _groups(self, banks: Sequence[int]) -> set[int]:
        return {b // self.bpg for b in banks}

    def constraints(self, op: PimOp, all_banks: int, bank: int) -> list[tuple[PimRule, int, int | None]]:
        """(rule, first legal cycle, bank) of every timing rule on the first element of a command, in rule order."""
        t = self.t
        out: list[tuple[PimRule, int, int | None]] = []
        nb = self.pim.banks
        targets = range(nb) if all_banks and op != PimOp.RDMAC else (bank,)

        def per_bank(rule: PimRule, times: list[int], n: int, banks: Iterable[int]) -> None:
            best, bb = _NEG, None
            for b in banks:
                if times[b] > best:
                    best, bb = times[b], b
            if bb is not None:
                out.append((rule, best + n, bb))

        if op == PimOp.ACT:
            per_bank(PimRule.RP, self.pre, t.rp, targets)
            per_bank(PimRule.RC, self.act, t.rc, targets)
            out.append((PimRule.RRD_S, self.act_any + t.rrd_s, None))
            out.append((PimRule.RRD_L, max(self.act_g[g] for g in self._groups(targets)) + t.rrd_l, None))
            if (not all_banks or t.faw_all_bank) and len(self.faw) == 4:
                out.append((PimRule.FAW, self.faw[0] + t.faw, None))
            out.append((PimRule.RFC, self.ref + t.rfc, None))
        elif op == PimOp.PRE:
            opened = [b for b in targets if self.open[b]]
            per_bank(PimRule.RAS, self.act, t.ras, opened)
            per_bank(PimRule.WR, self.wr, t.wr, opened)
            per_bank(PimRule.RTP, self.rtp, t.rtp, opened)
        elif op in (PimOp.RD, PimOp.WR, PimOp.MAC):
            n, rule = {PimOp.RD: (t.rcd_rd, PimRule.RCD_RD), PimOp.WR: (t.rcd_wr, PimRule.RCD_WR),
                       PimOp.MAC: (t.rcd_mac, PimRule.RCD_MAC)}[op]
            per_bank(rule, self.act, n, targets)
            out.append((PimRule.CCD_S, self.col_any + t.ccd_s, None))
            out.append((PimRule.CCD_L, max(self.col_g[g] for g in self._groups(targets)) + t.ccd_l, None))
            if op == PimOp.MAC and all_banks:
                out.append((PimRule.CCD_AB, self.mac_ab + t.ccd_ab, None))
            if op == PimOp.RD:
                out.append((PimRule.BUS, self.bus_free - t.rd_latency, None))
        elif op == PimOp.WRGB:
            out.append((PimRule.CCD_S, self.col_any + t.ccd_s, None))
        elif op == PimOp.RDMAC:
            out.append((PimRule.CCD_S, self.col_any + t.ccd_s, None))
            out.append((PimRule.BUS, self.bus_free - t.rdmac_latency, None))
        elif op == PimOp.REF:
            per_bank(PimRule.RP, self.pre, t.rp, range(nb))
            out.append((PimRule.RFC, self.ref + t.rfc, None))
        return out

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
        count = max(1, int(count))
        f = {"all_banks": int(all_banks), "channel": 0, "bank": int(bank), "row": int(row), "col": int(col),
             "count": count}
        if op_i == PimOp.RDMAC and all_banks:
            f["all_banks"], f["bank"], f["count"] = 0, 0, self.pim.banks
            all_banks, bank, count = 0, 0, self.pim.banks
        rule, rb = self._illegal(op_i, f)
        now = self.next if at is None else at
        if rule != PimRule.NONE:
            name = describe(PimOp(op_i), f) if op_i in _OPS else f"op {op_i}"
            raise PimIllegalError(f"{name} at cycle {now}: {illegal_message(rule, rb, self.pim)}", rule, rb, now)
        op = PimOp(op_i)
        cons = self.constraints(op, all_banks, bank)
        if at is not None:
            if at < self.next:
                raise AccelError(f"{describe(op, f)}: cycle {at} is before the channel can take a command "
                                 f"(cycle {self.next}: one command element per cycle, after the previous one)")
            for r, ready, b in cons:
                if ready > at:
                    raise PimTimingError(timing_message(op, f, r, ready - at, b, at, self.pim.timing), r,
                                         ready - at, b, at)
            t0 = at
        else:
            t0 = max([now] + [c[1] for c in cons])
        step = self.t.step(op, bool(all_banks))
        last = t0 + (count - 1) * step
        self._apply(op, f, t0, last, step, count, data)
        self.next = last + 1
        self.commands += 1
        self.elements += count
        return Issue(op, t0, last, count, step)

    # ---------------------------------------------------------------------------------------------------------------
    def _apply(self, op: PimOp, f: dict[str, int], t0: int, last: int, step: int, count: int, data: Any) -> None:
        t = self.t
        p = self.pim
        ab, bank, col = f["all_banks"], f["bank"], f["col"]
        targets = range(p.banks) if ab else (bank,)
        d = self._data
        if op == PimOp.ACT:
            for b in targets:
                self.act[b] = t0
                self.open[b] = True
                self.row[b] = f["row"]
                self.open_since[b] = t0
                if d is not None:
                    d.banks[b].open, d.banks[b].row = True, f["row"]
            self.act_any = t0
            for g in self._groups(targets):
                self.act_g[g] = t0
            if not ab or t.faw_all_bank:
                self.faw.append(t0)
        elif op == PimOp.PRE:
            for b in targets:
                if self.open[b]:
                    self.open[b] = False
                    self.pre[b] = t0
                    self.active_cycles[b] += t0 - self.open_since[b]
                    if d is not None:
                        d.banks[b].open = False
        elif op in (PimOp.RD, PimOp.WR, PimOp.MAC):
            self.col_any = last
            for g in self._groups(targets):
                self.col_g[g] = last
            if op == PimOp.RD:
                self.rtp[bank] = last
                self.bus_free = last + t.rd_latency + t.bl
                self.last_data = max(self.last_data, last + t.rd_latency)
                if self.record_reads:
                    rows = d.banks[bank].row_data(self.row[bank])
                    for k in range(count):
                        self.reads.append((t0 + k * step + t.rd_latency, pack_slots(rows[col + k], p.slot_bits)))
            elif op == PimOp.WR:
                for b in targets:
                    self.wr[b] = last
                if d is not None:
                    slots = self._slots(data, count)
                    for b in targets:
                        d.banks[b].row_data(self.row[b])[col:col + count] = slots
            else:
                for b in targets:
                    self.rtp[b] = last
                    self.mac_elements[b] += count
                if ab:
                    self.mac_ab = last
                if d is not None:
                    self._mac(d, targets, col, count)
        elif op == PimOp.WRGB:
            self.col_any = last
            if d is not None:
                d.gb[col:col + count] = self._slots(data, count)
        elif op == PimOp.RDMAC:
            self.col_any = last
            self.bus_free = last + t.rdmac_latency + t.bl
            self.last_data = max(self.last_data, last + t.rdmac_latency)
            if self.record_reads:
                for k in range(count):
                    self.reads.append((t0 + k * step + t.rdmac_latency, pack_slots(d.banks[bank + k].acc, ACC_BITS)))
        elif op == PimOp.CLRMAC:
            if d is not None:
                for b in targets:
                    d.banks[b].acc[:] = 0
        elif op == PimOp.REF:
            self.ref = t0
        elif op == PimOp.CFR:
            self._model._issue({"op": int(PimOp.CFR), **f}, 0)

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
        p = self.pim
        n = d.numerics
        gcols = (np.arange(col, col + count) % p.gb_columns)
        x = n.acts(d.gb[gcols])                       # count x lanes
        for b in targets:
            bk = d.banks[b]
            w = n.weights(bk.row_data(self.row[b])[col:col + count], bk.dtype)
            s = (w * x).sum(axis=0)
            if n.bitserial is not None:
                s = s * bk.scale
            bk.acc = n.wrap(bk.acc + s)

    # ---------------------------------------------------------------------------------------------------------------
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

    def stats(self) -> RunStats:
        end = self.cycles
        active = np.array([a + ((end - s) if o else 0) for a, s, o in
                           zip(self.active_cycles, self.open_since, self.open)], dtype=np.int64)
        macs = np.array(self.mac_elements, dtype=np.int64)
        return RunStats(end, active, macs, int(macs.sum()) * self.pim.mac_lanes, self.commands, self.elements,
                        list(self.reads))


def decode_program(words: Iterable[int]) -> list[dict[str, int]]:
    """Command words -> decoded PIM fields (raises :class:`~accel.errors.EncodingError` for bad words)."""
    from accel.isa import decode

    out = []
    for w in words:
        c = decode(int(w))
        if c.family != Family.PIM:
            raise AccelError(f"command word {int(w):#018x} is a {c.family.name} command; a PIM program holds PIM "
                             f"commands only")
        out.append({"op": int(c.op), **c.fields})
    return out


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
    """

    def __init__(self, device: DeviceConfig, functional: bool = True, dedup: bool = True) -> None:
        self.device = device
        self.functional = functional
        self.dedup = dedup and not functional
        p = device.pim
        self.channels = [ChannelEngine(p, device.bitserial if p.lane == "bitserial" else None, functional)
                         for _ in range(p.channels)]

    def run(self, program: Sequence[tuple[int, Any]] | Sequence[int]) -> RunStats:
        """Run a program: command words, or ``(word, data)`` pairs (data for WR/WRGB). Returns device totals."""
        per: list[list[tuple[dict[str, int], Any]]] = [[] for _ in self.channels]
        for item in program:
            word, data = (item if isinstance(item, tuple) else (item, None))
            (f,) = decode_program([word])
            ch = f.pop("channel")
            if ch >= len(self.channels):
                raise AccelError(f"command {describe(PimOp(f['op']), f)} addresses channel {ch}; the device has "
                                 f"{len(self.channels)} channels (0..{len(self.channels) - 1})")
            per[ch].append((f, data))
        if self.dedup:
            done: dict[tuple, int] = {}
            for ch, cmds in enumerate(per):
                key = tuple(tuple(sorted(f.items())) for f, _ in cmds)
                if key in done:
                    self._copy(done[key], ch)
                    continue
                self._run_channel(ch, cmds)
                done[key] = ch
        else:
            for ch, cmds in enumerate(per):
                self._run_channel(ch, cmds)
        return self.stats()

    def _copy(self, src: int, dst: int) -> None:
        import copy

        self.channels[dst] = copy.copy(self.channels[src])

    def _run_channel(self, ch: int, cmds: list[tuple[dict[str, int], Any]]) -> None:
        eng = self.channels[ch]
        for f, data in cmds:
            op = f.pop("op")
            eng.issue(op, data=data, **f)

    def stats(self) -> RunStats:
        per = [c.stats() for c in self.channels]
        return RunStats(max(s.cycles for s in per), np.stack([s.bank_active_cycles for s in per]),
                        np.stack([s.bank_mac_elements for s in per]), sum(s.mac_lane_ops for s in per),
                        sum(s.commands for s in per), sum(s.elements for s in per))

"""The per-command reference of the AiM host model: every channel simulated, every DRAM command issued one by one,
every cycle a controller has work ticked -- the straightforward reading of the simulator's DMA and controllers that
:class:`accel.emulator.aim.AimSystem` (closed-form column runs, channel classes, event skipping) is tested against on
random traces (``tests/test_pim_traces.py``) and that ``accel emulate --exact-reference`` runs.

It shares the timing table (:mod:`accel.emulator.aim_rules`) and the request decoding with the fast model; only the
execution differs.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from accel.traces import HostRequest, TraceError

from .aim import AIM, NOSEND, SPECIAL, AimResult, AimSystem, decode_request
from .aim_rules import AIM_COMMANDS, BG_SCOPE, CH_SCOPE, CMD

__all__ = ["run_reference"]

_ALL_BANK_PREQ = {"WRA16", "MAC16", "AF16", "EWMUL16"}
_BANK_PREQ = {"RD", "WR", "RDA", "WRA", "RDCP", "WRCP", "MAC"}


@dataclass
class _Req:
    host: int                 # host request index
    final: int                # final AiM command
    bg: int                   # -1: channel scope
    bank: int
    row: int
    col: int
    blocking: bool
    regmode: bool
    aim: bool                 # False: conventional read/write
    special: str = ""         # "EOC" / "SYNC"
    issue: int = -1
    arrive: int = 0


class _Channel:
    """One AiM channel controller and its GDDR6-AiM timing state (Ramulator-style ready cycle per command and node)."""

    def __init__(self, sysm: "_RefSystem", cid: int) -> None:
        self.s = sysm
        self.cid = cid
        nc = len(AIM_COMMANDS)
        g, bpg = sysm.groups, sysm.bpg
        self.ready_ch = [-1] * nc
        self.ready_bg = [[-1] * nc for _ in range(g)]
        self.ready_bank = [[[-1] * nc for _ in range(bpg)] for _ in range(g)]
        self.row: list[list[int | None]] = [[None] * bpg for _ in range(g)]
        self.buf: deque[_Req] = deque()       # AiM requests, in order
        self.reads: list[_Req] = []            # conventional requests (FR-FCFS)
        self.writes: list[_Req] = []
        self.opening: list[_Req] = []          # conventional requests whose row is being opened
        self.write_mode = False
        self.pending_reads: deque[tuple[int, _Req]] = deque()
        self.pending_writes: list[int] = []
        self.regmode = False
        self.clk = 0
        self.open_since = [[0] * bpg for _ in range(g)]
        self.active = np.zeros((g, bpg), dtype=np.int64)
        self.macs = np.zeros((g, bpg), dtype=np.int64)

    # -- device state -------------------------------------------------------------------------------------------------
    def preq(self, r: _Req) -> int:
        name = AIM_COMMANDS[r.final]
        if name in _ALL_BANK_PREQ:
            any_closed = False
            for g in range(self.s.groups):
                for b in range(self.s.bpg):
                    cur = self.row[g][b]
                    if cur is None:
                        any_closed = True
                    elif cur != r.row:
                        return CMD["PREA"]
            return CMD["ACT16"] if any_closed else r.final
        if name in _BANK_PREQ:
            cur = self.row[r.bg][r.bank]
            if cur is None:
                return CMD["ACT"]
            return r.final if cur == r.row else CMD["PRE"]
        return r.final

    def ready_at(self, cmd: int, r: _Req) -> int:
        t = self.ready_ch[cmd]
        if cmd in CH_SCOPE or r.bg < 0:
            return t
        t = max(t, self.ready_bg[r.bg][cmd])
        if cmd in BG_SCOPE or r.bank < 0:
            return t
        return max(t, self.ready_bank[r.bg][r.bank][cmd])

    def issue(self, cmd: int, r: _Req, clk: int) -> None:
        rules = self.s.rules
        for f, lat in rules[0][cmd]:
            if clk + lat > self.ready_ch[f]:
                self.ready_ch[f] = clk + lat
        bg = -1 if cmd in CH_SCOPE else r.bg
        if bg >= 0:
            rb = self.ready_bg[bg]
            for f, lat in rules[1][cmd]:
                if clk + lat > rb[f]:
                    rb[f] = clk + lat
            if cmd not in BG_SCOPE and r.bank >= 0:
                rk = self.ready_bank[bg][r.bank]
                for f, lat in rules[2][cmd]:
                    if clk + lat > rk[f]:
                        rk[f] = clk + lat
        name = AIM_COMMANDS[cmd]
        G, B = self.s.groups, self.s.bpg
        if name == "ACT16":
            for g in range(G):
                for b in range(B):
                    if self.row[g][b] is None:
                        self.open_since[g][b] = clk
                    self.row[g][b] = r.row
        elif name in ("PREA", "WRA16"):
            for g in range(G):
                for b in range(B):
                    if self.row[g][b] is not None:
                        self.active[g, b] += clk - self.open_since[g][b]
                    self.row[g][b] = None
        elif name == "ACT":
            self.row[r.bg][r.bank] = r.row
            self.open_since[r.bg][r.bank] = clk
        elif name in ("PRE", "RDA", "WRA"):
            if self.row[r.bg][r.bank] is not None:
                self.active[r.bg, r.bank] += clk - self.open_since[r.bg][r.bank]
            self.row[r.bg][r.bank] = None
        elif name == "MAC16":
            self.macs += 1
        elif name == "MAC":
            self.macs[r.bg, r.bank] += 1
        self.s.command_counts[name] = self.s.command_counts.get(name, 0) + 1

    # -- controller ---------------------------------------------------------------------------------------------------
    def send(self, r: _Req) -> bool:
        """A request from the DMA; False if the controller cannot take it now (as the simulator's send)."""
        if r.aim:
            if self.reads or self.writes:
                return False
            if len(self.buf) >= self.s.queue:
                return False
            self.buf.append(r)
            return True
        if self.buf:
            return False
        if AIM_COMMANDS[r.final] == "RD" and self.writes:
            # the simulator forwards a read from any buffered write (their addresses are all unset, hence equal)
            self.pending_reads.append((self.clk + 1, r))
            return True
        q = self.reads if AIM_COMMANDS[r.final] == "RD" else self.writes
        if len(q) >= self.s.queue:
            return False
        r.arrive = self.clk
        q.append(r)
        return True

    def _best(self, q: list[_Req], clk: int) -> tuple[_Req, int, bool]:
        """FR-FCFS: the oldest ready request, else the oldest (prerequisite command computed for each)."""
        best, bcmd, bready = None, -1, False
        for r in q:
            cmd = self.preq(r)
            ready = clk >= self.ready_at(cmd, r)
            if best is None or (ready and not bready) or (ready == bready and r.arrive < best.arrive):
                best, bcmd, bready = r, cmd, ready
        return best, bcmd, bready

    def tick(self) -> None:
        self.clk += 1
        clk = self.clk
        # 1. completed requests: the oldest pending read (SYNC/EOC wait for outstanding writes), then the writes
        #    (in this order, as the simulator does: a write completing now still holds back an EOC for a cycle)
        if self.pending_reads:
            depart, r = self.pending_reads[0]
            if depart <= clk and (not r.special or not self.pending_writes):
                self.pending_reads.popleft()
                if r.blocking:
                    self.s.receive(r)
        if self.pending_writes:
            self.pending_writes = [d for d in self.pending_writes if d > clk]
        # 2. pick a request: rows being opened for conventional requests first, then the AiM queue in order, then
        #    conventional reads or writes (FR-FCFS, with the simulator's read/write mode watermarks)
        r, cmd, q = None, -1, None
        if self.opening:
            r, cmd, ready = self._best(self.opening, clk)
            q = self.opening if ready else None
        if q is None:
            r = None
            if self.buf:
                r = self.buf[0]
                if r.special:
                    self.buf.popleft()
                    self.pending_reads.append((clk, r))
                    return
                cmd = self.preq(r)
                if clk < self.ready_at(cmd, r):
                    return
                q = self.buf
            elif self.reads or self.writes:
                if not self.write_mode:
                    if len(self.writes) > 0.8 * 32 or not self.reads:
                        self.write_mode = True
                elif len(self.writes) < 0.2 * 32 and self.reads:
                    self.write_mode = False
                pool = self.writes if self.write_mode else self.reads
                if not pool:
                    return
                r, cmd, ready = self._best(pool, clk)
                if not ready:
                    return
                q = pool
            else:
                return
        name = AIM_COMMANDS[cmd]
        if name in ("PRE", "RDA", "WRA") and any(a.bg == r.bg and a.bank == r.bank for a in self.opening):
            return  # would close a row another request has just opened
        if r.regmode != self.regmode:
            cmd = CMD["TMOD"]
            self.regmode = not self.regmode
        if r.issue < 0:
            r.issue = clk - 1
        self.issue(cmd, r, clk)
        if cmd == r.final:
            depart = clk + self.s.latencies[cmd]
            if r.blocking or (not r.aim and AIM_COMMANDS[r.final] == "RD"):
                self.pending_reads.append((depart, r))
            else:
                self.pending_writes.append(depart)
            if q is self.buf:
                self.buf.popleft()
            else:
                q.remove(r)
        elif not r.aim and name in ("ACT", "ACT4", "ACT16") and q is not self.opening:
            q.remove(r)
            self.opening.append(r)

    def next_event(self) -> int:
        """Earliest cycle (> clk) at which this channel's tick can change anything."""
        cands = []
        if self.pending_writes:
            cands.append(min(self.pending_writes))
        if self.pending_reads:
            cands.append(self.pending_reads[0][0])
        if self.reads or self.writes or self.opening:
            return self.clk + 1
        if self.buf:
            r = self.buf[0]
            if r.special:
                return self.clk + 1
            cands.append(self.ready_at(self.preq(r), r))
        if not cands:
            return 1 << 62
        return max(self.clk + 1, min(cands))




class _RefSystem:
    """The AiM DMA of the reference: one loop iteration per cycle (idle stretches of every channel skipped)."""

    def __init__(self, sysm: AimSystem) -> None:
        self.device = sysm.device
        self.rules = sysm.rules
        self.latencies = sysm.latencies
        self.groups, self.bpg, self.nch, self.queue = sysm.groups, sysm.bpg, sysm.nch, sysm.queue
        self.command_counts: dict[str, int] = {}

    def receive(self, r: _Req) -> None:
        self.stalled -= 1
        if self.stalled == 0:
            self._pop_head()

    def _pop_head(self) -> None:
        req = self.queue_reqs.popleft()
        if req.kind == "AiM" and req.op == "EOC":
            self.finished = True

    def _unroll(self, req: HostRequest, hid: int) -> list[tuple[int, _Req]]:
        d = decode_request(req, self.device.pim)
        if d[0] == NOSEND:
            return []
        kind, chans, final, bg, bank, row, n, blocking, regmode, op = d
        if kind == SPECIAL:
            return [(ch, _Req(hid, -1, -1, -1, -1, 0, True, False, True, op)) for ch in chans]
        return [(ch, _Req(hid, final, bg, bank, row, i, blocking, regmode, kind == AIM))
                for i in range(n) for ch in chans]

    def _send(self, ch: int, r: _Req) -> bool:
        return self.channels[ch].send(r)

    def run(self, requests: Sequence[HostRequest]) -> AimResult:
        self.channels = [_Channel(self, c) for c in range(self.nch)]
        self.queue_reqs: deque[HostRequest] = deque()
        self.remaining: list[deque[_Req]] = [deque() for _ in range(self.nch)]
        self.stalled = 0
        self.finished = False
        self.command_counts = {}
        host = 0          # host requests the front end has handed over (one per cycle, up to EOC)
        n = len(requests)
        clk = 0           # memory system cycles
        chans = self.channels
        while True:
            if host < n:
                self.queue_reqs.append(requests[host])
                host += 1
            if self.finished:
                break
            # AiM DMA: first the unrolled requests that did not fit a controller's queue
            was_remaining = any(self.remaining)
            still = False
            if was_remaining:
                for ch in range(self.nch):
                    q = self.remaining[ch]
                    while q:
                        if not self._send(ch, q[0]):
                            still = True
                            break
                        q.popleft()
            if self.stalled == 0:
                if was_remaining:
                    if not still:
                        self._pop_head()
                elif self.queue_reqs:
                    parts = self._unroll(self.queue_reqs[0], host)
                    all_sent = True
                    for ch, r in parts:
                        if not self._send(ch, r):
                            self.remaining[ch].append(r)
                            all_sent = False
                        if r.blocking:
                            self.stalled += 1
                    if self.stalled == 0 and all_sent:
                        self._pop_head()
            for c in chans:
                c.tick()
            clk += 1
            if self.finished:
                continue
            # if the DMA cannot move before a controller does, skip to the controllers' next event
            if self.stalled == 0 and not any(self.remaining) and (self.queue_reqs or host < n):
                continue
            if any(self.remaining) and any(self.remaining[ch] and len(chans[ch].buf) < self.queue
                                           for ch in range(self.nch)):
                continue
            nxt = min(c.next_event() for c in chans)
            if nxt >= 1 << 62:
                raise TraceError("the trace cannot make progress (a request waits for nothing that can happen)")
            skip = nxt - chans[0].clk - 1
            if skip > 0:
                for c in chans:
                    c.clk += skip
                clk += skip
                take = min(skip, n - host)
                self.queue_reqs.extend(requests[host:host + take])
                host += take
        p = self.device.pim
        active = np.stack([c.active.reshape(-1) for c in self.channels])
        for ci, c in enumerate(self.channels):  # rows still open at the end
            for g in range(self.groups):
                for b in range(self.bpg):
                    if c.row[g][b] is not None:
                        active[ci, g * self.bpg + b] += c.clk - c.open_since[g][b]
        macs = np.stack([c.macs.reshape(-1) for c in self.channels])
        return AimResult(clk, dict(self.command_counts), active.tolist(), macs.tolist(), int(macs.sum()) * p.mac_lanes,
                         n)


def run_reference(sysm: AimSystem, requests: Sequence[HostRequest]) -> AimResult:
    """Execute the host requests on the reference model of ``sysm``'s device, timing and queue depth."""
    return _RefSystem(sysm).run(list(requests))

"""The AiM host system: SK hynix's AiM DMA, channel controllers and GDDR6-AiM timing, executing host-level AiM traces
(the format is :mod:`accel.traces`).

:class:`AimSystem` executes such a trace the way that simulator does, as read from its source (commit 0f28a07):
the host front end offers one request per cycle; the AiM DMA decodes one request per cycle, unrolls it into
``opsize`` column requests for each channel of the mask (bit ``i`` is channel ``31 - i``) and queues them at the
channels' controllers (33 entries); RD_MAC, RD_AF, SYNC and EOC block the DMA until every channel has answered. Each
controller serves its AiM queue in order, one DRAM command per cycle, inserting the prerequisite commands the
request needs (ACT16 / PREA for all-bank requests, ACT / PRE for single-bank ones) and a mode change (TMOD, then
nMODCH cycles) between register and array accesses, and checks GDDR6-AiM's timing table (:data:`AIM_RULES`, the
constraints of the simulator's ``GDDR6.cpp`` as data). Conventional requests (``R/W MEM``, ``RD_SBK``, ``WR_SBK``)
are scheduled FR-FCFS with its row-opening buffer, read/write watermarks and write-to-read forwarding. The count is
the simulator's ``memory_system_cycles`` (equal on every trace tried, see docs/pim.md). Not modelled: refresh (the
simulator's all-bank refresh manager finds no rank level in its GDDR6 model and never refreshes).
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from accel.config import DeviceConfig
from accel.errors import ConfigError
from accel.traces import HostRequest, TraceError

__all__ = ["AimSystem", "AimResult", "AIM_EXTRA_TIMING", "AIM_RUNTIME_TIMING", "AIM_COMMANDS", "AIM_RULES",
           "AIM_ISRS", "latency"]

#: AiM timing parameters that the device description does not carry, as GDDR6_AiM_timing sets them (aim_simulator
#: commit 0f28a07, src/dram/impl/GDDR6.cpp; the last six are fixed in set_timing_vals).
AIM_EXTRA_TIMING = dict(nRCDEWMUL=25, nRCDRDAF=86, nRCDRDCP=66, nRCDWRCP=48, nWTRS=9, nWTRL=11, nRFCpb=105,
                        nRREFD=21, nMODCH=32, nCLREG=0, nCLGB=1, nCWLREG=1, nCWLGB=1, nWPRE=1)

#: What the simulator's GDDR6 model does at run time to its timing (set_timing_vals: the x16 / 2000 MT/s rows of its
#: nRRDS, nRRDL and nFAW tables overwrite the preset's values).
AIM_RUNTIME_TIMING = dict(nRRDS=5, nRRDL=6, nFAW=28)

AIM_COMMANDS = ("ACT", "PREA", "PRE", "RD", "WR", "RDA", "WRA", "REFab", "REFpb", "ACT4", "ACT16", "PRE4", "MAC",
                "MAC16", "AF16", "EWMUL16", "RDCP", "WRCP", "WRGB", "RDMAC16", "RDAF16", "WRMAC16", "WRA16", "TMOD")
_C = {n: i for i, n in enumerate(AIM_COMMANDS)}
_CH_SCOPE = {_C[n] for n in ("REFab", "ACT16", "PREA", "MAC16", "AF16", "EWMUL16", "WRGB", "RDMAC16", "RDAF16",
                             "WRMAC16", "WRA16", "TMOD")}
_BG_SCOPE = {_C["ACT4"], _C["PRE4"]}

#: GDDR6-AiM timing constraints (level | preceding | following | distance), the facts of the AiM simulator's
#: GDDR6.cpp timing table, written as data.
AIM_RULES = """
ch | RD RDA RDMAC16 RDAF16 | RD RDA RDMAC16 RDAF16 | nBL
ch | WR WRA WRA16 WRGB WRMAC16 | WR WRA WRA16 WRGB WRMAC16 | nBL
ch | RD RDA MAC MAC16 RDCP RDMAC16 RDAF16 | RD RDA MAC MAC16 RDCP RDMAC16 RDAF16 | nCCDS
ch | WR WRA WRA16 WRGB WRCP WRMAC16 | WR WRA WRA16 WRGB WRCP WRMAC16 | nCCDS
ch | RD RDA MAC RDCP RDMAC16 RDAF16 MAC16 EWMUL16 | RDMAC16 RDAF16 MAC16 EWMUL16 | nCCDL
ch | RDMAC16 RDAF16 MAC16 EWMUL16 | RD RDA MAC RDCP RDMAC16 RDAF16 MAC16 EWMUL16 | nCCDL
ch | WR WRA WRCP WRA16 WRMAC16 EWMUL16 | WRA16 WRMAC16 EWMUL16 | nCCDL
ch | WRA16 WRMAC16 EWMUL16 | WR WRA WRCP WRA16 WRMAC16 EWMUL16 | nCCDL
ch | RD RDA | WR WRA | nCL + nBL + 3 - nCWL + nWPRE
ch | RD RDA | WRA16 | nCL + nBL + 3 - nCWL + nWPRE
ch | RDMAC16 RDAF16 | WR WRA | nCLREG + nBL + 3 - nCWL + nWPRE
ch | RDMAC16 RDAF16 | WRA16 | nCLREG + nBL + 3 - nCWL + nWPRE
ch | RD RDA | WRGB | nCL + nBL + 3 - nCWLGB + nWPRE
ch | RD RDA | WRMAC16 | nCL + nBL + 3 - nCWLREG + nWPRE
ch | RDMAC16 RDAF16 | WRGB | nCLREG + nBL + 3 - nCWLGB + nWPRE
ch | RDMAC16 RDAF16 | WRMAC16 | nCLREG + nBL + 3 - nCWLREG + nWPRE
ch | WR WRA | RD RDA RDMAC16 RDAF16 | nCWL + nBL + nWTRS
ch | WRA16 | RD RDA RDMAC16 RDAF16 | nCWL + nBL + nWTRS
ch | WRGB | RD RDA RDMAC16 RDAF16 | nCWLGB + nBL + nWTRS
ch | WRMAC16 | RD RDA RDMAC16 RDAF16 | nCWLREG + nBL + nWTRS
ch | WR WRA | RDMAC16 RDAF16 | nCWL + nBL + nWTRL
ch | WRA16 | RD RDA RDMAC16 RDAF16 | nCWL + nBL + nWTRL
ch | WRMAC16 | RD RDA RDMAC16 RDAF16 | nCWLREG + nBL + nWTRL
ch | RD RDCP MAC MAC16 AF16 EWMUL16 | PREA | nRTP
ch | MAC16 AF16 EWMUL16 | PRE PRE4 | nRTP
ch | WR WRCP | PREA | nCWL + nBL + nWR
ch | EWMUL16 | PRE PRE4 PREA | nCWL + nWR
ch | ACT ACT4 | ACT ACT4 | nRRDS
ch | ACT ACT4 ACT16 | ACT16 | nRRDL
ch | ACT16 | ACT ACT4 ACT16 | nRRDL
ch | ACT ACT4 ACT16 | ACT16 | nRC
ch | ACT16 | ACT ACT4 ACT16 | nRC
ch | ACT ACT4 ACT16 | PREA | nRAS
ch | ACT16 | PRE PRE4 | nRAS
ch | PRE PRE4 PREA | ACT16 | nRP
ch | PREA | ACT ACT4 ACT16 | nRP
ch | ACT ACT4 ACT16 | MAC16 | nRCDRDMAC
ch | ACT ACT4 ACT16 | AF16 | nRCDRDAF
ch | ACT ACT4 ACT16 | EWMUL16 | nRCDEWMUL
ch | ACT16 | MAC | nRCDRDMAC
ch | ACT16 | RDCP | nRCDRDCP
ch | ACT16 | RD RDA | nRCDRD
ch | ACT ACT4 ACT16 | WRA16 | nRCDWR
ch | ACT16 | WRCP | nRCDWRCP
ch | ACT16 | WR WRA | nRCDWR
ch | RDA | ACT16 | nRTP + nRP
ch | WRA | ACT16 | nCWL + nBL + nWR + nRP
ch | WRA16 | ACT ACT4 ACT16 | nCWL + nBL + nWR + nRP
ch | ACT ACT4 ACT16 | REFab | nRC
ch | PRE PRE4 PREA | REFab | nRP
ch | RDA | REFab | nRTP + nRP
ch | WRA | REFab | nCWL + nBL + nWR + nRP
ch | WRA16 | REFpb REFab | nCWL + nBL + nWR + nRP
ch | REFab | ACT ACT4 ACT16 | nRFC
ch | ACT ACT4 ACT16 | REFpb | nRRDL
ch | ACT16 | REFpb | nRC
ch | PREA | REFpb | nRP
ch | REFpb | ACT16 | nRFCpb
ch | REFpb | ACT ACT4 ACT16 | nRREFD
ch | PREA | PRE PRE4 PREA | nRP
ch | PRE PRE4 | PREA | nRP
ch | TMOD | ACT PREA PRE RD WR RDA WRA REFab REFpb ACT4 ACT16 PRE4 MAC MAC16 AF16 EWMUL16 RDCP WRCP WRGB RDMAC16 RDAF16 WRMAC16 WRA16 | nMODCH
bg | RD RDA MAC RDCP | RD RDA MAC RDCP | nCCDL
bg | WR WRA WRCP | WR WRA WRCP | nCCDL
bg | WR WRA | RD RDA | nCWL + nBL + nWTRL
bg | RD RDCP MAC | PRE4 | nRTP
bg | WR WRCP | PRE4 | nCWL + nBL + nWR
bg | ACT ACT4 | ACT ACT4 | nRRDL
bg | ACT ACT4 | ACT4 | nRC
bg | ACT4 | ACT ACT4 | nRC
bg | ACT ACT4 | PRE4 | nRAS
bg | ACT4 | PRE | nRAS
bg | PRE PRE4 | ACT4 | nRP
bg | PRE4 | ACT | nRP
bg | RDA | ACT4 | nRTP + nRP
bg | WRA | ACT4 | nCWL + nBL + nWR + nRP
bg | ACT4 | REFpb | nRC
bg | PRE4 | REFpb | nRP
bg | REFpb | ACT4 | nRFCpb
bg | ACT4 | MAC | nRCDRDMAC
bg | ACT4 | RDCP | nRCDRDCP
bg | ACT4 | RD RDA | nRCDRD
bg | ACT4 | WRCP | nRCDWRCP
bg | ACT4 | WR WRA | nRCDWR
ch | PRE4 | PRE PRE4 | nRP
ch | PRE | PRE4 | nRP
bank | ACT | MAC | nRCDRDMAC
bank | ACT | RDCP | nRCDRDCP
bank | ACT | RD RDA | nRCDRD
bank | ACT | WRCP | nRCDWRCP
bank | ACT | WR WRA | nRCDWR
bank | RD RDCP MAC | PRE | nRTP
bank | WR WRCP | PRE | nCWL + nBL + nWR
bank | ACT | ACT | nRC
bank | ACT | PRE | nRAS
bank | PRE | ACT | nRP
bank | PRE | PRE | nRP
bank | RDA | ACT | nRTP + nRP
bank | WRA | ACT | nCWL + nBL + nWR + nRP
bank | ACT | REFpb | nRC
bank | PRE | REFpb | nRP
bank | RDA | REFpb | nRTP + nRP
bank | WRA | REFpb | nCWL + nBL + nWR + nRP
bank | REFpb | ACT | nRFCpb
"""


#: ISR -> (final DRAM command or None when the ISR issues none, blocks the DMA until every channel answered,
#: runs in register mode); the fields each ISR takes are :data:`accel.traces.AIM_ISR_FIELDS`.
AIM_ISRS: dict[str, tuple[str | None, bool, bool]] = {
    "WR_SBK": ("WR", False, False),
    "WR_ABK": ("WRA16", False, False),
    "WR_GB": ("WRGB", False, True),
    "WR_BIAS": ("WRMAC16", False, True),
    "WR_AFLUT": (None, False, False),
    "RD_MAC": ("RDMAC16", True, True),
    "RD_AF": ("RDAF16", True, True),
    "RD_SBK": ("RD", False, False),
    "COPY_BKGB": ("RDCP", False, False),
    "COPY_GBBK": ("WRCP", False, False),
    "MAC_SBK": ("MAC", False, False),
    "MAC_ABK": ("MAC16", False, False),
    "AF": ("AF16", False, False),
    "EWMUL": ("EWMUL16", False, False),
    "EWADD": (None, False, False),
    "SYNC": (None, True, False),
    "EOC": (None, True, False),
}

#: Final command -> cycles from its issue to the request's completion (the simulator's read/write latencies).
_LATENCY = {"WR": "nCWL + nBL", "WRGB": "nCWLGB + nBL", "WRMAC16": "nCWLREG + nBL", "RDMAC16": "nCLREG + nBL",
            "RDAF16": "nCLREG + nBL", "RD": "nCL + nBL", "RDCP": "1", "WRCP": "1", "MAC": "1", "MAC16": "1",
            "AF16": "1", "EWMUL16": "1", "WRA16": "nCWL + nBL + nRP"}

_TOKEN = re.compile(r"(?P<num>\d+)|(?P<name>[A-Za-z_]\w*)|(?P<op>[+-])")


def latency(expr: str, timing: Mapping[str, int]) -> int:
    """The value of a latency expression of :data:`AIM_RULES` (cycles): timing names and non-negative integers joined
    by ``+`` and ``-`` (``nCL + nBL + 3 - nCWL + nWPRE``), read by a parser that knows nothing else, so a rule can
    never run code.

    Raises
    ------
    ConfigError
        The expression is not of that form, or names a parameter ``timing`` does not have.
    """
    total, sign, want_term, pos = 0, 1, True, 0
    while True:
        while pos < len(expr) and expr[pos].isspace():
            pos += 1
        if pos == len(expr):
            break
        m = _TOKEN.match(expr, pos)
        if m is None or (m.group("op") is not None) == want_term:
            raise ConfigError(f"latency {expr!r}: expected a {'timing name or integer' if want_term else '+ or -'} "
                              f"at character {pos}; a latency is timing names and integers joined by + and -")
        pos = m.end()
        if m.group("op") is not None:
            sign = 1 if m.group("op") == "+" else -1
        elif m.group("num") is not None:
            total += sign * int(m.group("num"))
        else:
            name = m.group("name")
            if name not in timing:
                raise ConfigError(f"latency {expr!r}: unknown timing parameter {name!r}; parameters are "
                                  f"{', '.join(sorted(timing))}")
            total += sign * int(timing[name])
        want_term = not want_term
    if want_term:
        raise ConfigError(f"latency {expr!r}: must end with a timing name or integer")
    return total


#: ISR -> what bounds its opsize (in columns): a row, the global buffer, or both (copies between them).
_OPSIZE_LIMIT = {"MAC_SBK": "row", "MAC_ABK": "row", "EWMUL": "row", "WR_GB": "gb", "COPY_BKGB": "both",
                 "COPY_GBBK": "both"}

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


@dataclass
class AimResult:
    """Outcome of an AiM trace."""

    cycles: int
    commands: dict[str, int]
    bank_active_cycles: np.ndarray
    bank_mac_commands: np.ndarray
    mac_lane_ops: int
    host_requests: int


class _Channel:
    """One AiM channel controller and its GDDR6-AiM timing state (Ramulator-style ready cycle per command and node)."""

    def __init__(self, sysm: "AimSystem", cid: int) -> None:
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
                        return _C["PREA"]
            return _C["ACT16"] if any_closed else r.final
        if name in _BANK_PREQ:
            cur = self.row[r.bg][r.bank]
            if cur is None:
                return _C["ACT"]
            return r.final if cur == r.row else _C["PRE"]
        return r.final

    def ready_at(self, cmd: int, r: _Req) -> int:
        t = self.ready_ch[cmd]
        if cmd in _CH_SCOPE or r.bg < 0:
            return t
        t = max(t, self.ready_bg[r.bg][cmd])
        if cmd in _BG_SCOPE or r.bank < 0:
            return t
        return max(t, self.ready_bank[r.bg][r.bank][cmd])

    def issue(self, cmd: int, r: _Req, clk: int) -> None:
        rules = self.s.rules
        for f, lat in rules[0][cmd]:
            if clk + lat > self.ready_ch[f]:
                self.ready_ch[f] = clk + lat
        bg = -1 if cmd in _CH_SCOPE else r.bg
        if bg >= 0:
            rb = self.ready_bg[bg]
            for f, lat in rules[1][cmd]:
                if clk + lat > rb[f]:
                    rb[f] = clk + lat
            if cmd not in _BG_SCOPE and r.bank >= 0:
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
            cmd = _C["TMOD"]
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


class AimSystem:
    """The AiM DMA, controllers and GDDR6-AiM timing, executing a host trace (see the module docstring).

    Parameters
    ----------
    device:
        A device whose PIM timing gives the GDDR6 parameters (``aim-gddr6``); AiM-only ones come from
        :data:`AIM_EXTRA_TIMING`.
    queue:
        Entries of a controller's AiM request queue (the simulator's buffer takes up to 33).
    runtime_overrides:
        Apply what the simulator does to its timing at run time: its GDDR6 model replaces nRRDS, nRRDL and nFAW by
        its JEDEC table for x16 devices at 2000 MT/s (5, 6, 28 cycles; :data:`AIM_RUNTIME_TIMING`), whatever the
        preset says. Only single-bank activates feel it.
    """

    def __init__(self, device: DeviceConfig, queue: int = 33, runtime_overrides: bool = True) -> None:
        p = device.pim
        t = p.timing
        self.device = device
        vals = dict(nBL=t.nBL, nCL=t.nCL, nRCDRD=t.nRCD, nRCDRDMAC=t.nRCD_MAC, nRCDWR=t.nRCDWR, nRP=t.nRP,
                    nRAS=t.nRAS, nRC=t.nRC, nWR=t.nWR, nRTP=t.nRTP, nCWL=t.nCWL, nCCDS=t.nCCDS, nCCDL=t.nCCDL,
                    nRRDS=t.nRRDS, nRRDL=t.nRRDL, nFAW=t.nFAW, nRFC=t.nRFC, nREFI=t.nREFI, **AIM_EXTRA_TIMING)
        if runtime_overrides:
            vals.update(AIM_RUNTIME_TIMING)
        self.timing = vals
        self.groups, self.bpg = p.bank_groups, p.banks_per_group
        self.nch = p.channels
        self.queue = queue
        levels = {"ch": 0, "bg": 1, "bank": 2}
        self.rules: list[list[list[tuple[int, int]]]] = [[[] for _ in AIM_COMMANDS] for _ in range(3)]
        for line in AIM_RULES.strip().splitlines():
            lvl, pre, fol, expr = (x.strip() for x in line.split("|"))
            lat = latency(expr, vals)
            for a in pre.split():
                for b in fol.split():
                    self.rules[levels[lvl]][_C[a]].append((_C[b], lat))
        self.latencies = [0] * len(AIM_COMMANDS)
        for name, expr in _LATENCY.items():
            self.latencies[_C[name]] = latency(expr, vals)
        self.command_counts: dict[str, int] = {}

    # DMA ---------------------------------------------------------------------------------------------------------------
    def receive(self, r: _Req) -> None:
        self.stalled -= 1
        if self.stalled == 0:
            self._pop_head()

    def _pop_head(self) -> None:
        req = self.queue_reqs.popleft()
        if req.kind == "AiM" and req.op == "EOC":
            self.finished = True

    def _channels_of(self, mask: int, req: HostRequest) -> list[int]:
        out = []
        for i in range(32):
            if mask >> i & 1:
                ch = 31 - i
                if ch >= self.nch:
                    raise TraceError(f"{req.where}: channel mask {mask:#x} selects channel {ch}; the device has "
                                     f"{self.nch} channels (bit i is channel 31 - i)")
                out.append(ch)
        return out

    def _unroll(self, req: HostRequest, hid: int) -> list[tuple[int, _Req]]:
        f = req.f
        if req.kind != "AiM":
            if req.op != "MEM":
                return []
            ch = f["channel"]
            if not 0 <= ch < self.nch:
                raise TraceError(f"{req.where}: channel {ch} does not exist (the device has {self.nch})")
            self._check_request(req)
            bg, bank = self._bank(f["bank"], req)
            final = _C["RD"] if req.kind == "R" else _C["WR"]
            return [(ch, _Req(hid, final, bg, bank, f["row"], 0, False, False, False))]
        final, blocking, regmode = AIM_ISRS[req.op]
        if req.op in ("SYNC", "EOC"):
            return [(ch, _Req(hid, -1, -1, -1, -1, 0, True, False, True, req.op)) for ch in range(self.nch)]
        if final is None:
            return []
        chans = self._channels_of(f["mask"], req)
        if req.op == "WR_ABK" and len(chans) != 1:
            raise TraceError(f"{req.where}: WR_ABK must select exactly one channel (mask {f['mask']:#x})")
        self._check_request(req)
        bg, bank = self._bank(f["bank"], req) if "bank" in f else (-1, -1)
        row = f.get("row", -1)
        aim = req.op not in ("RD_SBK", "WR_SBK")
        out = []
        for i in range(f.get("opsize", 1)):
            for ch in chans:
                out.append((ch, _Req(hid, _C[final], bg, bank, row, i, blocking, regmode, aim)))
        return out

    def _bank(self, index: int, req: HostRequest) -> tuple[int, int]:
        if not 0 <= index < self.groups * self.bpg:
            raise TraceError(f"{req.where}: bank {index} does not exist (banks 0..{self.groups * self.bpg - 1})")
        return index // self.bpg, index % self.bpg

    def _check_request(self, req: HostRequest) -> None:
        """The device's ranges: a row of the banks, an opsize within a row's columns or the global buffer."""
        p, f = self.device.pim, req.f
        if "row" in f and not 0 <= f["row"] < p.rows:
            raise TraceError(f"{req.where}: {req.op} row {f['row']}: the banks have rows 0 .. {p.rows - 1}")
        limit = _OPSIZE_LIMIT.get(req.op)
        if limit is not None:
            cols = {"row": p.columns, "gb": p.gb_columns, "both": min(p.columns, p.gb_columns)}[limit]
            if f["opsize"] > cols:
                what = {"row": f"the columns of a row ({p.row_bytes} bytes)",
                        "gb": f"the columns of the global buffer ({p.global_buffer_bytes} bytes)",
                        "both": "the columns of both a row and the global buffer"}[limit]
                raise TraceError(f"{req.where}: {req.op} opsize {f['opsize']}: must be between 1 and {cols}, "
                                 f"{what}; split the request")

    def _send(self, ch: int, r: _Req) -> bool:
        return self.channels[ch].send(r)

    def run(self, requests: list[HostRequest], symmetric: bool = True) -> AimResult:
        """Execute the host requests; the count is the simulator's memory_system_cycles.

        When every request addresses all channels (the usual AiM kernels), the channels receive equal request streams
        in equal order and stay in lockstep, so one channel is simulated for all (the same cycle count; statistics
        are replicated)."""
        full = (1 << 32) - (1 << (32 - self.nch))
        symmetric = symmetric and self.nch > 1 and all(
            (r.kind == "AiM" and ("mask" not in r.f or r.f["mask"] == full) and r.op != "WR_ABK")
            or (r.kind == "W" and r.op != "MEM") or (r.kind == "R" and r.op != "MEM") for r in requests)
        if symmetric:
            nch, self.nch = self.nch, 1
            one = [HostRequest(r.kind, r.op, {**r.f, "mask": 1 << 31} if "mask" in r.f else r.f, r.line, r.source)
                   for r in requests]
            try:
                res = self._run(one)
            finally:
                self.nch = nch
            res.bank_active_cycles = np.repeat(res.bank_active_cycles, nch, axis=0)
            res.bank_mac_commands = np.repeat(res.bank_mac_commands, nch, axis=0)
            res.mac_lane_ops *= nch
            res.commands = {k: v * nch for k, v in res.commands.items()}
            return res
        return self._run(requests)

    def _run(self, requests: list[HostRequest]) -> AimResult:
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
        return AimResult(clk, dict(self.command_counts), active, macs, int(macs.sum()) * p.mac_lanes, n)

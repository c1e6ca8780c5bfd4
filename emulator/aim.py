"""The AiM host system: SK hynix's AiM DMA, channel controllers and GDDR6-AiM timing, executing host-level AiM traces
(the format is :mod:`accel.traces`).

:class:`AimSystem` executes such a trace the way that simulator does, as read from its source (commit 0f28a07):
the host front end offers one request per cycle; the AiM DMA decodes one request per cycle, unrolls it into
``opsize`` column requests for each channel of the mask (bit ``i`` is channel ``31 - i``) and queues them at the
channels' controllers (33 entries); RD_MAC, RD_AF, SYNC and EOC block the DMA until every channel has answered. Each
controller serves its AiM queue in order, one DRAM command per cycle, inserting the prerequisite commands the
request needs (ACT16 / PREA for all-bank requests, ACT / PRE for single-bank ones) and a mode change (TMOD, then
nMODCH cycles) between register and array accesses, and checks GDDR6-AiM's timing table (:data:`AIM_RULES`, the
constraints of the simulator's ``GDDR6.cpp`` as data; :data:`AIM_RULE_VARIANTS` for the commit CENT pins).
Conventional requests (``R/W MEM``, ``RD_SBK``, ``WR_SBK``) are scheduled FR-FCFS with its row-opening buffer,
read/write watermarks and write-to-read forwarding. The count is the simulator's ``memory_system_cycles`` (equal on
every trace tried, see docs/pim.md). Not modelled: refresh (the simulator's all-bank refresh manager finds no rank
level in its GDDR6 model and never refreshes).

How it is fast and still exact (each step keeps the per-cycle semantics of :mod:`accel.emulator.aim_reference`, the
per-command model it is tested against):

* the DMA is simulated per request, not per cycle: a request is decoded at ``max(its arrival, the previous request's
  end)``; a controller is advanced only when the DMA talks to it, from one state change to the next (the earliest
  cycle a waiting command becomes legal, a read completing), never cycle by cycle;
* a full 33-entry queue does not make the DMA retry every cycle: the DMA refills one slot per command that leaves the
  queue, so the last column of a request is accepted when the queue has emptied enough, which is computed;
* the columns of one request that follow its first issued command (MAC16 x opsize, WRGB, RDCP, ...) issue at a fixed
  pitch (the largest rule from that command to itself), so they are applied in closed form: one update of the timing
  state at the last column's cycle (the rules take the latest issue), counters by the run length;
* channels that received the same requests at the same cycles are one controller (a class of channels); a request to
  part of a class splits it, and classes whose states are equal at a cycle (timing state relative to that cycle, rows,
  queues) are merged again; per-bank statistics are kept per class and handed to each member at splits and merges.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from operator import eq
from typing import Sequence

from accel.config import DeviceConfig, PimConfig
from accel.traces import AimTrace, HostRequest, TraceError

from .aim_rules import (AIM_COMMANDS, AIM_EXTRA_TIMING, AIM_ISRS, AIM_RULE_VARIANTS, AIM_RULES, AIM_RUNTIME_TIMING,
                        BG_SCOPE, CH_SCOPE, CMD, AimTiming, latency)

__all__ = ["AimSystem", "AimResult", "AIM_EXTRA_TIMING", "AIM_RUNTIME_TIMING", "AIM_COMMANDS", "AIM_RULES",
           "AIM_RULE_VARIANTS", "AIM_ISRS", "latency", "decode_request"]

_INF = 1 << 62
_ACT, _PRE, _PREA, _ACT16, _TMOD = CMD["ACT"], CMD["PRE"], CMD["PREA"], CMD["ACT16"], CMD["TMOD"]
_MAC, _MAC16, _RD, _WR = CMD["MAC"], CMD["MAC16"], CMD["RD"], CMD["WR"]
#: Final commands whose prerequisite is every bank open at the request's row (ACT16 / PREA).
ALL_BANK_PREQ = frozenset(CMD[n] for n in ("WRA16", "MAC16", "AF16", "EWMUL16"))
#: Final commands whose prerequisite is the request's bank open at its row (ACT / PRE).
BANK_PREQ = frozenset(CMD[n] for n in ("RD", "WR", "RDA", "WRA", "RDCP", "WRCP", "MAC"))
_CLOSES_ONE = frozenset(CMD[n] for n in ("PRE", "RDA", "WRA"))       # a PRE of another's opening row waits
_ACTIVATES = frozenset(CMD[n] for n in ("ACT", "ACT4", "ACT16"))
_ROW_CHANGE = frozenset(CMD[n] for n in ("ACT", "ACT16", "PREA", "WRA16", "PRE", "RDA", "WRA"))
_STATS = _ROW_CHANGE | {_MAC, _MAC16}

# decoded request kinds
NOSEND, CONV, AIM, SPECIAL = 0, 1, 2, 3


#: ISR -> what bounds its opsize (in columns): a row, the global buffer, or both (copies between them). EWMUL is
#: not bounded: the simulator issues its opsize column commands on the open rows whatever the count, and CENT's traces
#: rely on it (EWMUL opsize up to 512 on aim-gddr6's 64-column rows).
_OPSIZE_LIMIT = {"MAC_SBK": "row", "MAC_ABK": "row", "WR_GB": "gb", "COPY_BKGB": "both", "COPY_GBBK": "both"}


def decode_request(req: HostRequest, pim: PimConfig) -> tuple:
    """What the AiM DMA makes of one host request on a device's PIM channels: ``(kind, channels, final, bg, bank,
    row, columns, blocking, regmode, op)`` with kind :data:`NOSEND` (no column request: CFR/GPR writes, EWADD),
    :data:`CONV` (a conventional request: ``R/W MEM``, RD_SBK, WR_SBK), :data:`AIM` or :data:`SPECIAL` (SYNC / EOC,
    to every channel). ``bg`` / ``bank`` are -1 for channel-wide requests.

    Raises
    ------
    TraceError
        A channel, bank, row or mask the device does not have, an opsize beyond a row or the global buffer; the
        message names the request's ``source:line``.
    """
    f, nch, groups, bpg = req.f, pim.channels, pim.bank_groups, pim.banks_per_group
    if req.kind != "AiM":
        if req.op != "MEM":
            return (NOSEND,)
        ch = f["channel"]
        if not 0 <= ch < nch:
            raise TraceError(f"{req.where}: channel {ch} does not exist (the device has {nch})")
        bg, bank = _bank(f["bank"], req, groups, bpg)
        check_ranges(req, pim)
        return (CONV, (ch,), _RD if req.kind == "R" else _WR, bg, bank, f["row"], 1, False, False, "MEM")
    final, blocking, regmode = AIM_ISRS[req.op]
    if req.op in ("SYNC", "EOC"):
        return (SPECIAL, tuple(range(nch)), -1, -1, -1, -1, 1, True, False, req.op)
    if final is None:
        return (NOSEND,)
    mask = f["mask"]
    chans = _mask_channels(mask)
    if chans and chans[-1] >= nch:
        raise TraceError(f"{req.where}: channel mask {mask:#x} selects channel {chans[-1]}; the device has "
                         f"{nch} channels (bit i is channel 31 - i)")
    if req.op == "WR_ABK" and len(chans) != 1:
        raise TraceError(f"{req.where}: WR_ABK must select exactly one channel (mask {mask:#x})")
    check_ranges(req, pim)
    bg, bank = _bank(f["bank"], req, groups, bpg) if "bank" in f else (-1, -1)
    kind = CONV if req.op in ("RD_SBK", "WR_SBK") else AIM
    return (kind, chans, CMD[final], bg, bank, f.get("row", -1), f.get("opsize", 1), blocking, regmode, req.op)


@lru_cache(maxsize=None)
def _mask_channels(mask: int) -> tuple[int, ...]:
    """The channels a channel mask selects (bit ``i`` is channel ``31 - i``), ascending (a trace has a few masks)."""
    return tuple(sorted(31 - i for i in range(32) if mask >> i & 1))


def _bank(index: int, req: HostRequest, groups: int, bpg: int) -> tuple[int, int]:
    if not 0 <= index < groups * bpg:
        raise TraceError(f"{req.where}: bank {index} does not exist (banks 0..{groups * bpg - 1})")
    return index // bpg, index % bpg


def check_ranges(req: HostRequest, pim: PimConfig) -> None:
    """The device's ranges of a request: a row of the banks, an opsize within a row's columns or the global buffer
    (what :func:`accel.traces.read_aim_trace` cannot check without the device)."""
    f = req.f
    if "row" in f and not 0 <= f["row"] < pim.rows:
        name = req.op if req.kind == "AiM" else f"{req.kind} {req.op}"
        raise TraceError(f"{req.where}: {name} row {f['row']}: the banks have rows 0 .. {pim.rows - 1}")
    limit = _OPSIZE_LIMIT.get(req.op)
    if limit is not None:
        cols = {"row": pim.columns, "gb": pim.gb_columns, "both": min(pim.columns, pim.gb_columns)}[limit]
        if f["opsize"] > cols:
            what = {"row": f"the columns of a row ({pim.row_bytes} bytes)",
                    "gb": f"the columns of the global buffer ({pim.global_buffer_bytes} bytes)",
                    "both": "the columns of both a row and the global buffer"}[limit]
            raise TraceError(f"{req.where}: {req.op} opsize {f['opsize']}: must be between 1 and {cols}, {what}; "
                             f"split the request")


def _check_mem(trace: AimTrace, pim: PimConfig) -> None:
    """Every ``R/W MEM`` column of a trace within the device (channel, bank, row), checked at once before a run
    (stretches that repeat are jumped over, not visited); a bad one raises the error of the earliest bad request."""
    nch, nb, rows = pim.channels, pim.banks, pim.rows
    ch, bank, row = trace.channel, trace.bank, trace.row   # 0 for other requests: within every device
    if not ch or (0 <= min(ch) and max(ch) < nch and 0 <= min(bank) and max(bank) < nb and 0 <= min(row)
                  and max(row) < rows):
        return
    first = next(i for i, (m, c, b, r) in enumerate(zip(trace.mem, ch, bank, row))
                 if m and not (0 <= c < nch and 0 <= b < nb and 0 <= r < rows))
    for i in sorted(i for i in trace.other if i < first):
        decode_request(trace.other[i], pim)        # an earlier bad request is the one to name
    decode_request(trace.request(first), pim)


@dataclass
class AimResult:
    """Outcome of an AiM trace: cycles (the simulator's memory_system_cycles), DRAM commands by name (all channels),
    per channel and bank (lists: channels x banks) the cycles a row was open and the MAC commands, lane MACs, host
    requests."""

    cycles: int
    commands: dict[str, int]
    bank_active_cycles: list[list[int]]
    bank_mac_commands: list[list[int]]
    mac_lane_ops: int
    host_requests: int


class _Plan:
    """The timing table laid out for the controllers: one flat list of ready cycles per controller (a slot per
    channel-, bank-group- and bank-level following command that this model can issue), and per (command, node) the
    slots a command reads and the ``(slot, latency)`` pairs its issue raises (node ``nb`` = channel-wide request)."""

    def __init__(self, timing: AimTiming, groups: int, bpg: int) -> None:
        nb = groups * bpg
        issuable = sorted({_ACT, _PRE, _PREA, _ACT16, _TMOD, _RD, _WR}
                          | {CMD[f] for f, _, _ in AIM_ISRS.values() if f is not None})
        slot: dict[tuple, int] = {}
        for c in issuable:
            slot[("ch", c)] = len(slot)
        for g in range(groups):
            for c in issuable:
                if c not in CH_SCOPE:
                    slot[("bg", g, c)] = len(slot)
        for n in range(nb):
            for c in issuable:
                if c not in CH_SCOPE and c not in BG_SCOPE:
                    slot[("bank", n, c)] = len(slot)
        self.nslots = len(slot)        # and one more, always -1, that pads every read to three slots
        nc = len(AIM_COMMANDS)
        self.read: list[list[tuple[int, ...]]] = [[()] * (nb + 1) for _ in range(nc)]
        self.plan: list[list[tuple[tuple[int, int], ...]]] = [[()] * (nb + 1) for _ in range(nc)]
        self.pitch: list[list[int]] = [[1] * (nb + 1) for _ in range(nc)]
        for c in range(nc):
            for node in range(nb + 1):
                g = node // bpg if node < nb else -1
                keys = [("ch", c)]
                if c not in CH_SCOPE and g >= 0:
                    keys.append(("bg", g, c))
                    if c not in BG_SCOPE:
                        keys.append(("bank", node, c))
                got = [slot[k] for k in keys if k in slot]
                self.read[c][node] = tuple(got + [self.nslots] * (3 - len(got)))   # padded: never raised
                raise_: dict[int, int] = {}
                levels = [(0, "ch", ())]
                if c not in CH_SCOPE and g >= 0:
                    levels.append((1, "bg", (g,)))
                    if c not in BG_SCOPE:
                        levels.append((2, "bank", (node,)))
                for lvl, name, where in levels:
                    for f, lat in timing.rules[lvl][c]:
                        s = slot.get((name, *where, f))
                        if s is not None and raise_.get(s, -1) < lat:
                            raise_[s] = lat
                self.plan[c][node] = tuple(sorted(raise_.items()))
                self.pitch[c][node] = max([1] + [raise_[s] for s in got if s in raise_])


class _Seg:
    """An AiM request in a controller's queue: ``n`` columns of one final command (read-only but for ``n``)."""

    __slots__ = ("final", "node", "row", "blocking", "regmode", "special", "n")

    def __init__(self, final: int, node: int, row: int, blocking: bool, regmode: bool, special: bool, n: int) -> None:
        self.final, self.node, self.row, self.blocking, self.regmode, self.special, self.n = \
            final, node, row, blocking, regmode, special, n

    def key(self) -> tuple:
        return (self.final, self.node, self.row, self.blocking, self.regmode, self.special, self.n)


class _Ctl:
    """One AiM channel controller, standing for every channel of its class (``members``).

    The state is that of the per-cycle model after tick ``t`` (the controller's clock); ``nxt`` is the earliest tick
    at which anything can change. Conventional requests are lists ``[final, node, row, arrive, is_read, host request]``; pending
    reads are ``(depart, blocking, special)``, delivered one per tick in order; ``mwd`` is the latest completion of a
    write (or other non-read command). ``lastpop = (first, t0, pitch, count)``: the queue pops of the latest issue
    (one column, or a closed-form run of them at ``t0 + j * pitch``).
    """

    __slots__ = ("s", "members", "R", "rows", "n_open", "rowcnt", "open_since", "active", "macs", "mac16", "counts",
                 "regmode", "write_mode", "buf", "buflen", "reads", "writes", "opening", "pr", "n_prb", "last_deliv",
                 "mwd", "t", "nxt", "busy", "popped", "lastpop", "sent_block", "delivered", "deliv_tick", "opener",
                 "phase", "r0", "rd", "pl")

    def __init__(self, sysm: "AimSystem", members: list[int]) -> None:
        self.s = sysm
        self.members = members
        nb = sysm.nb
        self.R = [-1] * (sysm.plan.nslots + 1)
        self.rows: list[int | None] = [None] * nb
        self.n_open = 0
        self.rowcnt: dict[int, int] = {}
        self.open_since = [0] * nb
        self.active = [0] * nb
        self.macs = [0] * nb
        self.mac16 = 0
        self.counts = [0] * len(AIM_COMMANDS)
        self.regmode = False
        self.write_mode = False
        self.buf: deque[_Seg] = deque()
        self.buflen = 0
        self.reads: list[list] = []
        self.writes: list[list] = []
        self.opening: list[list] = []
        self.pr: deque[tuple[int, bool, bool]] = deque()
        self.n_prb = 0
        self.last_deliv = -1
        self.mwd = -1
        self.t = 0
        self.nxt = _INF
        self.busy = -1
        self.popped = 0
        self.lastpop = (0, 0, 1, 0)
        self.sent_block = 0
        self.delivered = 0
        self.deliv_tick = 0
        self.opener = [-1] * nb        # host request whose ACT opened each bank (-1: an AiM command or none)
        self.phase = -1                # the conventional phase whose first request this controller took, with
        self.r0: list = []             # its rows then
        self.rd = sysm.plan.read       # the timing plan's tables, read on every command
        self.pl = sysm.plan.plan

    def clone(self, members: list[int]) -> "_Ctl":
        c = _Ctl.__new__(_Ctl)
        for name in _Ctl.__slots__:
            setattr(c, name, getattr(self, name))
        c.members = members
        for name in ("R", "rows", "open_since", "active", "macs", "counts", "reads", "writes", "opening", "opener"):
            setattr(c, name, list(getattr(self, name)))
        c.rowcnt = dict(self.rowcnt)
        c.buf = deque(_Seg(*s.key()) for s in self.buf)
        c.pr = deque(self.pr)
        return c

    # -- device state -------------------------------------------------------------------------------------------------
    def _when(self, f: int, node: int, row: int) -> tuple[int, int]:
        """The command a request for final command ``f`` needs next (the prerequisite ACT16 / PREA for all-bank
        requests, ACT / PRE for single-bank ones, else ``f``) and the earliest cycle it is legal."""
        if f in ALL_BANK_PREQ:
            n = self.n_open
            if n and n > self.rowcnt.get(row, 0):
                cmd = _PREA
            else:
                cmd = _ACT16 if n < self.s.nb else f
        elif f in BANK_PREQ:
            cur = self.rows[node]
            cmd = _ACT if cur is None else f if cur == row else _PRE
        else:
            cmd = f
        R = self.R
        a, b, c = self.rd[cmd][node]
        x, y, z = R[a], R[b], R[c]
        if y > x:
            x = y
        return cmd, z if z > x else x

    def _issue(self, cmd: int, node: int, row: int, k: int) -> None:
        R = self.R
        for s, lat in self.pl[cmd][node]:
            v = k + lat
            if v > R[s]:
                R[s] = v
        self.counts[cmd] += 1
        if cmd not in _STATS:
            return
        rows = self.rows
        if cmd == _MAC16:
            self.mac16 += 1
        elif cmd == _MAC:
            self.macs[node] += 1
        elif cmd == _ACT16:
            for b in range(self.s.nb):
                if rows[b] is None:
                    self.open_since[b] = k
                rows[b] = row
                self.opener[b] = -1
            self.n_open = self.s.nb
            self.rowcnt = {row: self.s.nb}
        elif cmd == _ACT:
            rows[node] = row
            self.open_since[node] = k
            self.opener[node] = -1
            self.n_open += 1
            self.rowcnt[row] = self.rowcnt.get(row, 0) + 1
        elif cmd in _CLOSES_ONE:
            cur = rows[node]
            if cur is not None:
                self.active[node] += k - self.open_since[node]
                self.rowcnt[cur] -= 1
                self.n_open -= 1
                rows[node] = None
        else:  # PREA, WRA16: every bank
            for b in range(self.s.nb):
                if rows[b] is not None:
                    self.active[b] += k - self.open_since[b]
                    rows[b] = None
            self.n_open = 0
            self.rowcnt = {}

    # -- one tick of the per-cycle controller ----------------------------------------------------------------------
    def _deliver(self, k: int) -> None:
        """Step 1 of the ticks up to ``k``: pending reads leave in order, one per tick (reads that nobody waits for
        are caught up here lazily; blocking ones are events of their own)."""
        pr = self.pr
        last = self.last_deliv
        while pr:
            d, blk, sp = pr[0]
            x = d if d > last + 1 else last + 1
            if sp and self.mwd >= x:
                x = self.mwd + 1           # SYNC/EOC also wait for every write to complete
            if x > k:
                break
            pr.popleft()
            last = x
            if blk:
                self.n_prb -= 1
                self.delivered += 1
                self.deliv_tick = x
        self.last_deliv = last

    def _best(self, q: list[list], k: int, ordered: bool) -> tuple[list, int, bool]:
        """FR-FCFS: the oldest ready request, else the oldest (prerequisite command computed for each: conventional
        requests are RD / WR, whose prerequisite is ACT or PRE of their bank). ``ordered``: ``q`` is in arrival
        order (the read and write queues: the DMA hands a controller at most one request a cycle), so the first
        ready request is the oldest."""
        best, bcmd, bready = None, -1, False
        rows, R, rd = self.rows, self.R, self.rd
        for e in q:
            node = e[1]
            cur = rows[node]
            cmd = _ACT if cur is None else e[0] if cur == e[2] else _PRE
            a, b, c = rd[cmd][node]
            x, y, z = R[a], R[b], R[c]
            if y > x:
                x = y
            ready = k >= x and k >= z
            if ready and ordered:
                return e, cmd, True
            if best is None or (ready and not bready) or (ready == bready and e[3] < best[3]):
                best, bcmd, bready = e, cmd, ready
        return best, bcmd, bready

    def _tick(self, k: int) -> bool:
        """The controller's tick ``k``; False if it changed nothing (then it changes nothing until a waiting command
        becomes legal or a read completes)."""
        if self.pr:
            self._deliver(k)
        opening = self.opening
        if opening:
            e, cmd, ready = self._best(opening, k, False)
            if ready:
                return self._issue_conv(e, cmd, opening, k)
        if self.buflen:
            if k <= self.busy:
                return False
            seg = self.buf[0]
            if seg.special:
                self._pop(seg, k)
                self.pr.append((k + 1, True, True))
                self.n_prb += 1
                return True
            f, node, row = seg.final, seg.node, seg.row
            cmd, at = self._when(f, node, row)
            if k < at:
                return False
            if cmd in _CLOSES_ONE and any(a[1] == node for a in opening):
                return False
            if seg.regmode != self.regmode:
                cmd = _TMOD
                self.regmode = seg.regmode
            self._issue(cmd, node, row, k)
            if cmd != f:
                return True
            depart = k + self.s.latencies[f]
            if seg.blocking:
                self.pr.append((depart, True, False))
                self.n_prb += 1
            else:
                more = seg.n - 1
                if more and not opening and not self.n_prb and f not in _ROW_CHANGE:
                    # the other columns follow at the command's pitch: one issue at the last column's cycle
                    pitch = self.s.plan.pitch[f][node]
                    last = k + more * pitch
                    self._issue(f, node, row, last)
                    self.counts[f] += more - 1
                    if f == _MAC16:
                        self.mac16 += more - 1
                    elif f == _MAC:
                        self.macs[node] += more - 1
                    self.busy = last
                    depart = last + self.s.latencies[f]
                    if depart > self.mwd:
                        self.mwd = depart
                    self.lastpop = (self.popped, k, pitch, more + 1)
                    self.popped += more + 1
                    self.buflen -= more + 1
                    self.buf.popleft()
                    return True
                if depart > self.mwd:
                    self.mwd = depart
            self._pop(seg, k)
            return True
        if self.reads or self.writes:
            nw = len(self.writes)
            if not self.write_mode:
                if nw > 0.8 * 32 or not self.reads:
                    self.write_mode = True
            elif nw < 0.2 * 32 and self.reads:
                self.write_mode = False
            pool = self.writes if self.write_mode else self.reads
            if not pool:
                return False
            e, cmd, ready = self._best(pool, k, True)
            if not ready:
                return False
            return self._issue_conv(e, cmd, pool, k)
        return False

    def _pop(self, seg: _Seg, k: int) -> None:
        self.lastpop = (self.popped, k, 1, 1)
        self.popped += 1
        self.buflen -= 1
        seg.n -= 1
        if not seg.n:
            self.buf.popleft()

    def _issue_conv(self, e: list, cmd: int, q: list, k: int) -> bool:
        node = e[1]
        if cmd in _CLOSES_ONE and self.opening and any(a[1] == node for a in self.opening):
            return False  # would close a row another request has just opened
        wanted = cmd
        if self.regmode:
            cmd = _TMOD
            self.regmode = False
        self._issue(cmd, node, e[2], k)
        if cmd == _ACT:
            self.opener[node] = e[5]
        if cmd == e[0]:
            depart = k + self.s.latencies[cmd]
            if e[4]:
                self.pr.append((depart, False, False))
            elif depart > self.mwd:
                self.mwd = depart
            q.remove(e)
        elif wanted in _ACTIVATES and q is not self.opening:
            # as the simulator does: the request counts as opening its row when its ACT was due, even if a mode
            # change (TMOD) went out instead
            q.remove(e)
            self.opening.append(e)
        return True

    def _schedule(self, k: int, did: bool) -> None:
        """``nxt`` after tick ``k``: the earliest tick at which a waiting command becomes legal or a blocking read can
        leave. After a tick that changed nothing, what was already legal stays blocked until something changes."""
        m = _INF
        if self.n_prb:
            last = self.last_deliv
            for d, blk, sp in self.pr:
                x = d if d > last + 1 else last + 1
                if blk:
                    if sp and self.mwd >= x:
                        x = self.mwd + 1
                    m = x
                    break
                last = x
        rows, R, rd = self.rows, self.R, self.rd
        for q in (self.opening,) if self.buflen else (self.opening, self.reads, self.writes):
            for e in q:     # as _best: RD / WR, prerequisite ACT or PRE
                node = e[1]
                cur = rows[node]
                a, b, c = rd[_ACT if cur is None else e[0] if cur == e[2] else _PRE][node]
                x, y, z = R[a], R[b], R[c]
                if y > x:
                    x = y
                if z > x:
                    x = z
                if x < m and (did or x > k):
                    m = x
        if self.buflen:
            seg = self.buf[0]
            x = k + 1 if seg.special else self._when(seg.final, seg.node, seg.row)[1]
            if x <= self.busy:
                x = self.busy + 1
            if x < m and (did or x > k):
                m = x
        self.nxt = m if m > k else k + 1

    # -- what the DMA asks -------------------------------------------------------------------------------------------
    def advance(self, T: int) -> None:
        """Run every tick up to ``T``."""
        while self.nxt <= T:
            k = self.nxt
            did = self._tick(k)
            self.t = k
            self._schedule(k, did)

    def _step(self) -> int:
        k = self.nxt
        if k >= _INF:
            raise TraceError("the trace cannot make progress (a request waits for nothing that can happen)")
        did = self._tick(k)
        self.t = k
        self._schedule(k, did)
        return k

    def _future_pops(self, X: int) -> int:
        """Queue pops of the latest closed-form run that happen after tick ``X``."""
        first, t0, pitch, cnt = self.lastpop
        if cnt <= 1 or X >= t0 + (cnt - 1) * pitch:
            return 0
        return cnt - (X - t0) // pitch - 1

    def _pop_tick(self, p: int) -> int:
        """The tick of queue pop number ``p`` (counted from the start), running ticks until it has happened."""
        while self.popped <= p:
            self._step()
        first, t0, pitch, _ = self.lastpop
        return t0 + (p - first) * pitch

    def send_aim(self, seg: _Seg, T: int) -> int:
        """The DMA offers ``seg.n`` AiM columns at cycle ``T``; the cycle at which it has handed over the last one."""
        self.advance(T)
        X = T
        while self.reads or self.writes:
            X = self._step()
        future = self._future_pops(X)
        free = self.s.queue - self.buflen - future
        self.buf.append(seg)
        self.buflen += seg.n
        if seg.blocking:
            self.sent_block += 1
        nx = X + 1 if X >= self.busy else self.busy + 1
        if nx < self.nxt:
            self.nxt = nx
        if seg.n <= free:
            return X
        # each queue pop after X frees the slot the DMA refills in that cycle
        return self._pop_tick(self.popped - future + seg.n - free - 1)

    def send_conv(self, e: list, T: int) -> int:
        """The DMA offers a conventional request at cycle ``T``; the cycle at which the controller takes it."""
        self.advance(T)
        X = T
        Q = self.s.queue
        while True:
            if self.buflen or self._future_pops(X):
                X = max(X, self._pop_tick(self.popped + self.buflen - 1))
                continue
            if e[4] and self.writes:
                # the simulator forwards a read from any buffered write (their addresses are all unset, hence equal)
                self.pr.append((X + 1, False, False))
                return X
            q = self.reads if e[4] else self.writes
            if len(q) >= Q:
                X = self._step()
                continue
            e[3] = X
            q.append(e)
            if X + 1 < self.nxt:
                self.nxt = X + 1
            return X

    def wait_delivery(self) -> int:
        """Run until every blocking request sent has been answered; the tick of the last answer."""
        while self.delivered < self.sent_block:
            self._step()
        return self.deliv_tick

    # -- classes of channels -----------------------------------------------------------------------------------------
    def key(self, t: int) -> tuple:
        """The state after tick ``t`` as it matters for every later tick: ready cycles and completion times relative
        to ``t`` (anything at or before ``t + 1`` is legal from then on), rows, modes, queues."""
        self._deliver(t)
        lo = t + 1
        fut = self._future_pops(t)
        first, t0, pitch, cnt = self.lastpop
        run = (t0 + (cnt - fut) * pitch - t, pitch, fut) if fut else None
        return (tuple([x - t if x > lo else 1 for x in self.R]), tuple(self.rows), self.regmode, self.write_mode,
                tuple(s.key() for s in self.buf), run,
                tuple((e[0], e[1], e[2], e[3] - t, e[4]) for e in self.reads),
                tuple((e[0], e[1], e[2], e[3] - t, e[4]) for e in self.writes),
                tuple((e[0], e[1], e[2], e[3] - t, e[4]) for e in self.opening),
                tuple((d - t if d > lo else 1, blk, sp) for d, blk, sp in self.pr),
                max(self.last_deliv - t, 0), max(self.mwd - t, 0), max(self.busy - t, 0),
                self.sent_block - self.delivered)

    def stretch_key(self, t: int, i: int, label) -> tuple:
        """As :meth:`key` for a controller in a stretch of MEM requests at request ``i``: rows as ``label(node,
        row)`` (their class of equal rows, relative to request ``i``), queued requests by their index relative to
        ``i``."""
        self._deliver(t)
        lo = t + 1
        return (tuple([x - t if x > lo else 1 for x in self.R]),
                tuple([label(b, r) for b, r in enumerate(self.rows)]), self.regmode, self.write_mode,
                tuple(tuple((e[0], e[1], label(e[1], e[2]), e[3] - t, e[4], e[5] - i) for e in q)
                      for q in (self.reads, self.writes, self.opening)),
                tuple((d - t if d > lo else 1, blk, sp) for d, blk, sp in self.pr),
                max(self.last_deliv - t, 0), max(self.mwd - t, 0), max(self.busy - t, 0))

    def stats(self, t: int) -> tuple:
        """Row-open cycles of each bank up to tick ``t`` (closed and still open), command and MAC counts."""
        return ([self.active[b] + (t - self.open_since[b] if self.rows[b] is not None else 0)
                 for b in range(self.s.nb)], list(self.counts), list(self.macs), self.mac16)

    def repeat(self, t: int, periods: int, dt: int, dreq: int, before: tuple, now: tuple, rows: list[int]) -> None:
        """Move the state after tick ``t`` forward by ``periods`` periods of ``dt`` cycles and ``dreq`` host
        requests, in which it repeats what it did in the last one (``before`` / ``now``: :meth:`stats` a period
        ago and now; ``rows``: every host request's row)."""
        sh, ish, lo, t0 = periods * dt, periods * dreq, t + 1, t - dt
        self.R = [x + sh if x > lo else x for x in self.R]
        for b in range(self.s.nb):
            if self.rows[b] is not None and self.open_since[b] > t0:   # opened in the last period: again in each
                self.opener[b] += ish
                self.rows[b] = rows[self.opener[b]]
                self.open_since[b] += sh
        self.rowcnt = {}
        for r in self.rows:
            if r is not None:
                self.rowcnt[r] = self.rowcnt.get(r, 0) + 1
        for q in (self.reads, self.writes, self.opening):
            q[:] = [[e[0], e[1], rows[e[5] + ish], e[3] + sh, e[4], e[5] + ish] for e in q]
        self.pr = deque((d + sh if d > lo else d, blk, sp) for d, blk, sp in self.pr)
        if self.last_deliv > t:
            self.last_deliv += sh
        if self.mwd > t:
            self.mwd += sh
        if self.busy > t:
            self.busy += sh
        self.t += sh
        if self.nxt < _INF:
            self.nxt += sh
        (v0, c0, m0, x0), (v1, c1, m1, x1) = before, now
        end = t + sh
        for b in range(self.s.nb):
            v = v1[b] + periods * (v1[b] - v0[b])
            self.active[b] = v - (end - self.open_since[b] if self.rows[b] is not None else 0)
            self.macs[b] += periods * (m1[b] - m0[b])
        for k in range(len(self.counts)):
            self.counts[k] += periods * (c1[k] - c0[k])
        self.mac16 += periods * (x1 - x0)

    def flush(self, t: int) -> None:
        """Hand the statistics gathered so far (rows open up to tick ``t``) to every member channel; start afresh."""
        s = self.s
        nb = s.nb
        open_ = [t - self.open_since[b] if self.rows[b] is not None else 0 for b in range(nb)]
        for m in self.members:
            act, mac = s.base_active[m], s.base_macs[m]
            for b in range(nb):
                act[b] += self.active[b] + open_[b]
                mac[b] += self.macs[b] + self.mac16
        k = len(self.members)
        for c, n in enumerate(self.counts):
            s.base_counts[c] += n * k
        self.active = [0] * nb
        self.macs = [0] * nb
        self.mac16 = 0
        self.counts = [0] * len(AIM_COMMANDS)
        self.open_since = [t] * nb


class _NoRepeat(Exception):
    """A state that a stretch's repetition does not explain (no jump)."""


class _Stretch:
    """A stretch of consecutive ``R/W MEM`` host requests ``[a, b)`` that repeats with period ``p``: request ``q + p``
    has the kind, channel and bank of request ``q`` and the same distance back to the last request to its channel,
    bank and row (none within the run of MEM requests: 0). ``prev[q]``: that last request (-1: none); ``chans``: the
    channels the stretch addresses."""

    __slots__ = ("a", "b", "p", "chans")

    def __init__(self, a: int, b: int, p: int, chans: list[int]) -> None:
        self.a, self.b, self.p, self.chans = a, b, p, chans


def _mem_runs(trace: AimTrace) -> list[tuple[int, int]]:
    """The maximal runs ``[s, e)`` of consecutive ``R/W MEM`` requests (every request not in ``trace.other``)."""
    out, last = [], -1
    for o in [*sorted(trace.other), len(trace)]:
        if o > last + 1:
            out.append((last + 1, o))
        last = o
    return out


def _stretches(trace: AimTrace, nb: int, runs: list[tuple[int, int]], min_periods: int = 4, max_period: int = 8192
               ) -> tuple[list[_Stretch], list[int]]:
    """The repeating stretches of a trace's runs of MEM requests (``runs``: :func:`_mem_runs`; :class:`_Stretch`), in
    order, and for every request the last earlier MEM request of the same run to its channel, bank and row (-1:
    none)."""
    n = len(trace)
    prev = [-1] * n
    chl, bankl, rowl, meml = trace.channel, trace.bank, trace.row, trace.mem
    out = []
    for s, e in runs:
        last: dict[tuple[int, int, int], int] = {}
        get = last.get
        for i, key in enumerate(zip(chl[s:e], bankl[s:e], rowl[s:e]), s):
            prev[i] = get(key, -1)
            last[key] = i
        m = e - s
        if m < 2 * min_periods:
            continue
        base = [(c * (nb + 1) + b) * 3 + k for c, b, k in zip(chl[s:e], bankl[s:e], meml[s:e])]
        mid = m // 2
        period = 0
        x = base[mid]
        for j in range(mid + 1, min(m, mid + 1 + max_period)):
            if base[j] != x:
                continue
            p = j - mid
            if p > m // min_periods:
                break
            if sum(map(eq, base[p:], base[:-p])) * 2 >= m - p:
                period = p
                break
        if not period:
            continue
        w = m + 1
        sig = [bs * w + (i - q if q >= 0 else 0) for i, bs, q in zip(range(s, e), base, prev[s:e])]
        j, top = 0, m - period
        while j < top:                           # runs [u, v) with sig[j] == sig[j + period] for j in [u, v)
            if sig[j] != sig[j + period]:
                j += 1
                continue
            u = j
            while j < top and sig[j] == sig[j + period]:
                j += 1
            if j + period - u >= min_periods * period:
                out.append(_Stretch(s + u, s + j + period, period, sorted(set(chl[s + u:s + u + period]))))
    return out, prev


class AimSystem:
    """The AiM DMA, controllers and GDDR6-AiM timing, executing a host trace (see the module docstring).

    Parameters
    ----------
    device, runtime_overrides:
        As :class:`accel.emulator.aim_rules.AimTiming` takes them (the GDDR6 parameters; the simulator's run-time
        nRRDS / nRRDL / nFAW, which only single-bank activates feel).
    queue:
        Entries of a controller's AiM request queue (the simulator's buffer takes up to 33).
    timing:
        Which commit of the simulator's GDDR6 timing table to apply (:data:`AIM_RULE_VARIANTS`): ``"0f28a07"``
        (its HEAD) or ``"2eb1ee0"`` (the commit CENT pins; its published latencies are that commit's counts).
    """

    def __init__(self, device: DeviceConfig, queue: int = 33, runtime_overrides: bool = True,
                 timing: str = "0f28a07") -> None:
        p = device.pim
        self.device = device
        self.rule_timing = AimTiming(device, timing, runtime_overrides)
        self.timing = self.rule_timing.values
        self.rules = self.rule_timing.rules
        self.latencies = self.rule_timing.latencies
        self.groups, self.bpg = p.bank_groups, p.banks_per_group
        self.nb = p.banks
        self.nch = p.channels
        self.queue = queue
        self.plan = _Plan(self.rule_timing, self.groups, self.bpg)

    def run(self, trace: AimTrace | Sequence[HostRequest], reference: bool = False) -> AimResult:
        """Execute a trace (:func:`accel.traces.read_aim_trace`, or a list of host requests); the count is the
        simulator's memory_system_cycles.

        ``reference``: run the per-command, per-cycle model instead (:mod:`accel.emulator.aim_reference`; every
        channel, every DRAM command, every cycle a controller has work) -- the model this one is tested against."""
        if reference:
            from .aim_reference import run_reference

            return run_reference(self, trace.requests() if isinstance(trace, AimTrace) else trace)
        return self._run(trace if isinstance(trace, AimTrace) else AimTrace.from_requests(list(trace)))

    # classes of channels -------------------------------------------------------------------------------------------
    def _split(self, ctl: _Ctl, chans: list[int]) -> _Ctl:
        new = ctl.clone(list(chans))
        taken = set(chans)
        ctl.members = [m for m in ctl.members if m not in taken]
        for m in chans:
            self.owner[m] = new
        self.ctls.append(new)
        self.version += 1
        return new

    def _targets(self, chans: tuple[int, ...]) -> list[_Ctl]:
        """The controllers standing for exactly these channels (classes split where the request covers part)."""
        hit = self.tcache.get(chans)
        if hit is not None and hit[0] == self.version:
            return hit[1]
        groups: dict[int, tuple[_Ctl, list[int]]] = {}
        for ch in chans:
            c = self.owner[ch]
            g = groups.get(id(c))
            if g is None:
                groups[id(c)] = (c, [ch])
            else:
                g[1].append(ch)
        out = [c if len(cs) == len(c.members) else self._split(c, cs) for c, cs in groups.values()]
        self.tcache[chans] = (self.version, out)
        return out

    def _merge(self, ctls: list[_Ctl], t: int) -> list[_Ctl]:
        """Merge the classes among ``ctls`` whose states after cycle ``t`` are equal; the controllers left."""
        by_key: dict[tuple, list[_Ctl]] = {}
        for c in ctls:
            c.advance(t)
            by_key.setdefault(c.key(t), []).append(c)
        if len(by_key) == len(ctls):
            return ctls
        out = []
        for group in by_key.values():
            keep = group[0]
            if len(group) > 1:
                for c in group:
                    c.flush(t)
                for c in group[1:]:
                    keep.members.extend(c.members)
                    for m in c.members:
                        self.owner[m] = keep
                    self.ctls.remove(c)
                keep.members.sort()
                self.version += 1
            out.append(keep)
        return out

    # stretches of MEM requests that repeat -------------------------------------------------------------------------
    def _stretch_key(self, st: _Stretch, i: int, t: int) -> tuple | None:
        """The state of the stretch's controllers and what the next period asks of them, relative to request ``i``
        and cycle ``t``; None where a jump is not provably exact (a controller shared with other channels or holding
        AiM work, a row not explained by the stretch)."""
        p, run = st.p, self.runl[i]
        for ch in st.chans:
            c = self.owner[ch]
            if len(c.members) != 1 or c.phase != run or c.buflen or c.sent_block != c.delivered:
                return None
        reqs: dict[int, list] = {ch: [] for ch in st.chans}
        for q in range(i, i + p):
            ch, node, row = self.chl[q], self.nodel[q], self.rowl[q]
            pq = self.prevl[q]
            if row == self.owner[ch].r0[node]:
                lab = "R0"
            elif pq < 0:
                lab = "new"
            elif pq < st.a:
                return None
            else:
                lab = pq - i
            reqs[ch].append((q - i, self.meml[q], node, lab))
        out = []
        for ch in st.chans:
            c = self.owner[ch]
            c.advance(t)
            if c._future_pops(t):
                return None

            touched = {r[2] for r in reqs[ch]}

            def label(node: int, row: int | None, c: _Ctl = c, ch: int = ch, touched: set = touched) -> object:
                if row is None:
                    return None
                if node not in touched:
                    return "other"      # a bank no request of the stretch compares its row with
                if row == c.r0[node]:
                    return "R0"
                x = self.last_idx.get((ch, node, row), -1)
                if x < st.a:
                    raise _NoRepeat
                return x - i

            try:
                if any(e[5] < st.a for q in (c.reads, c.writes, c.opening) for e in q):
                    return None
                out.append((ch, c.stretch_key(t, i, label), tuple(reqs[ch])))
            except _NoRepeat:
                return None
        return tuple(out)

    def _checkpoint(self, st: _Stretch, i: int, t: int) -> tuple[int, int] | None:
        """At request ``i`` of a stretch (a period boundary): if the state equals the one a period ago and the stretch
        goes on, jump the whole periods left (each would repeat the last one); the request and cycle to go on from."""
        key = self._stretch_key(st, i, t)
        ref, self.cp_ref = self.cp_ref, None
        raised, self.fe_raised = self.fe_raised, False
        if key is None:
            return None
        now = {ch: self.owner[ch].stats(t) for ch in st.chans}
        if ref is not None and ref[0] is st and ref[1] == i - st.p and ref[3] == key:
            dt = t - ref[2]
            periods = (st.b - i) // st.p
            # the front end (one request per cycle) must not have held the DMA back, unless it runs at its pace
            opened = all(c.opener[b] >= st.a for c in (self.owner[ch] for ch in st.chans)
                         for b in range(self.nb) if c.rows[b] is not None and c.open_since[b] > ref[2])
            if periods and opened and (dt == st.p or not raised) and self._r0_repeats(st, i, periods):
                for ch in st.chans:
                    self.owner[ch].repeat(t, periods, dt, st.p, ref[4][ch], now[ch], self.rowl)
                end = i + periods * st.p
                for q in range(end - st.p, end):
                    self.last_idx[(self.chl[q], self.nodel[q], self.rowl[q])] = q
                self.jumped += periods * st.p
                return end, t + periods * dt
        self.cp_ref = (st, i, t, key, now)
        return None

    def _r0_repeats(self, st: _Stretch, i: int, periods: int) -> bool:
        """Whether the requests of the periods to jump hit their channel's starting rows exactly where the last period
        did (every other row equality is fixed by the stretch's repeating distances)."""
        lo, hi = i - st.p, i + periods * st.p
        r0 = {ch: self.owner[ch].r0 for ch in st.chans}    # a closed row (None) equals no row
        hit = [row == r0[ch][node] for ch, node, row in zip(self.chl[lo:hi], self.nodel[lo:hi], self.rowl[lo:hi])]
        return hit[st.p:] == hit[:-st.p]

    def _run(self, trace: AimTrace) -> AimResult:
        pim = self.device.pim
        _check_mem(trace, pim)
        nch, bpg, nb = self.nch, self.bpg, self.nb
        root = _Ctl(self, list(range(nch)))
        self.ctls = [root]
        self.owner = [root] * nch
        self.version = 0
        self.tcache: dict[tuple, tuple] = {}
        self.base_active = [[0] * nb for _ in range(nch)]
        self.base_macs = [[0] * nb for _ in range(nch)]
        self.base_counts = [0] * len(AIM_COMMANDS)
        self.trace = trace
        n = len(trace)
        # a MEM request's node is its bank (checked above: 0 <= bank < nb); other requests are decoded on their own
        self.meml, self.chl, self.rowl, self.nodel = trace.mem, trace.channel, trace.row, trace.bank
        runs = _mem_runs(trace)
        stretches, self.prevl = _stretches(trace, nb, runs)
        self.runl = [-1] * n        # for each MEM request the first request of its run
        for s, e in runs:
            self.runl[s:e] = [s] * (e - s)
        self.last_idx: dict[tuple[int, int, int], int] = {}
        self.cp_ref = None
        self.fe_raised = False
        self.jumped = 0
        todo = [st for st in stretches if st.a + 3 * st.p <= st.b][::-1]
        st = todo.pop() if todo else None
        cp = st.a + st.p if st else -1
        meml, chl, nodel, rowl, runl, other, last_idx = self.meml, self.chl, self.nodel, self.rowl, self.runl, \
            trace.other, self.last_idx
        merge_wait, backoff = 1, 1
        dcache: dict[tuple, tuple] = {}
        t = 0              # the cycle at which the DMA can decode the next request
        end = None
        i = 0
        while i < n:
            if i == cp:
                ti = t if t >= i else i
                res = self._checkpoint(st, i, ti)
                if res is None:
                    t = ti
                    after = i + 1
                else:
                    i, t = res
                    after = i          # a next stretch may begin its checks where this one was left
                if res is None and i + 2 * st.p <= st.b:
                    cp = i + st.p
                else:
                    while st is not None and st.a + st.p < after:
                        st = todo.pop() if todo else None
                    cp = st.a + st.p if st else -1
                if res is not None:
                    continue
            elif t < i:
                t = i       # the front end hands over one request per cycle
                self.fe_raised = True
            k = meml[i]
            if k:           # R/W MEM: a conventional request to one channel
                ch, node, row = chl[i], nodel[i], rowl[i]
                c = self.owner[ch]
                if len(c.members) > 1:
                    c = self._targets((ch,))[0]
                t = c.send_conv([_RD if k == 2 else _WR, node, row, 0, k == 2, i], t) + 1
                if c.phase != runl[i]:
                    c.phase = runl[i]
                    c.r0 = list(c.rows)
                last_idx[(ch, node, row)] = i
                i += 1
                continue
            req = other[i]
            dkey = (req.kind, req.op, *req.f.values())
            d = dcache.get(dkey)
            if d is None:
                d = dcache[dkey] = decode_request(req, pim)
            i += 1
            kind = d[0]
            if kind == NOSEND:
                t += 1
                continue
            _, chans, final, bg, bank, row, n_, blocking, regmode, op = d
            node = bg * bpg + bank if bg >= 0 else nb
            ctls = self._targets(chans)
            if kind == CONV:
                X = t
                for c in ctls:
                    X = max(X, c.send_conv([final, node, row, 0, final == _RD, i - 1], t))
                t = X + 1
                continue
            if len(ctls) > 1:
                merge_wait -= 1
                if merge_wait <= 0:
                    before = len(ctls)
                    ctls = self._merge(ctls, t)
                    backoff = 1 if len(ctls) < before else min(2 * backoff, 64)
                    merge_wait = backoff
            X = t
            for c in ctls:
                X = max(X, c.send_aim(_Seg(final, node, row, blocking, regmode, kind == SPECIAL, n_), t))
            if not blocking:
                t = X + 1
                continue
            t = max(c.wait_delivery() for c in ctls)
            if op == "EOC":
                end = t
                break
        if end is None:
            raise TraceError(f"{trace.source}: the trace ends without 'AiM EOC'; add it as the last request")
        for c in self.ctls:
            c.advance(end)
            c.flush(end)
        counts = {name: n for name, n in zip(AIM_COMMANDS, self.base_counts) if n}
        macs = self.base_macs
        return AimResult(end, counts, self.base_active, macs, sum(map(sum, macs)) * self.device.pim.mac_lanes, n)

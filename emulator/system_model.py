"""The per-cycle system model: the reference the system engine (:mod:`accel.emulator.system`) must equal.

Every stream has a sequencer and its unit's per-cycle model: :class:`~accel.emulator.units.pim.PimChannel` (the
RTL's twin) for PIM channels, :class:`~accel.emulator.units.vector.VectorUnit`, :class:`~accel.emulator.units.link.Link`
and, for the attention array, an occupancy model that holds each command for its closed-form cycles
(:func:`~accel.emulator.system.array_cycles`; the array's own per-cycle models are checked against those counts in
tests/test_attention.py and tests/test_gemm_rtl.py). All of them step cycle by cycle, each on its own clock: time
advances in ticks of the device's common time base (:attr:`~accel.config.DeviceConfig.clocks`), and at every tick
the units whose clock has an edge there step once.

A sequencer drives its unit through the unit's ports only. In each cycle of its unit it first executes the SYNC
commands at the head of its stream, as many as it can: ``MARK`` is noted; ``SIGNAL`` is posted (its event becomes
visible once every command the sequencer handed over before it has completed); ``WAIT`` passes when its event is
visible and the sync latency has elapsed (in ticks), else the sequencer stalls there. Sequencers of one tick repeat
this until none moves (a chain of events with zero sync latency settles in one tick). Then it offers the next unit
command on the unit's ``cmd`` port; the command is handed over when the unit takes it. The sequencer learns when a
command has completed from the unit's outputs: a PIM element's ``issued`` pulse (the cycle after it; for a MAC, when
the lanes are free: the sequencer follows the datatypes its own CFR commands set), a read's ``rdata`` beat, the
vector unit's ``done``, the link's ``arrive``. No unit state is read.

No sequencer can move, none has a posted SIGNAL or a command in flight, and some stream has work left: the program
deadlocks (:class:`~accel.program.DeadlockError`, the same message as the engine's).
"""
from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any

from accel.config import DeviceConfig
from accel.errors import AccelError
from accel.isa import TABLES, AttnOp, Family, PimOp, SyncOp
from accel.program import Program, deadlock_message
from accel.progress import progress_bar

from .system import UNIT_KINDS, StreamResult, SystemResult, array_cycles, static_events
from .units.link import Link
from .units.pim import PimChannel
from .units.vector import VectorUnit

__all__ = ["SystemModel"]

_PIM = TABLES[Family.PIM]
_SYNC = TABLES[Family.SYNC]
_ATTN = TABLES[Family.ATTN]
_FAM_OFF, _FAM_W = _PIM.offsets()["family"]


class _ArrayOccupancy:
    """The attention array as an occupancy model: a command taken in cycle ``s`` completes in ``s + cycles``."""

    def __init__(self, device: DeviceConfig) -> None:
        self.cfg = device.attention
        self.left = 0

    def step(self, inputs: dict[str, int]) -> dict[str, int]:
        ready = self.left == 0
        if ready and inputs.get("cmd__valid", 0):
            f = _ATTN.decode(inputs["cmd__payload"])
            self.left = array_cycles(f["op"], f["m"], f["k"], f["n"], f["dataflow"], f["count"], self.cfg)
        busy = int(self.left > 0)
        done = 0
        if self.left:
            self.left -= 1
            done = int(self.left == 0)
        return {"cmd__ready": int(ready), "busy": busy, "done": done}


class _Cmd:
    """A command handed to a unit: when it was taken and started, and when it completes (once known)."""

    __slots__ = ("accept", "start", "end", "elements", "beats", "op", "targets")

    def __init__(self, accept: int) -> None:
        self.accept = accept
        self.start = -1
        self.end = -1          # latest completion of its elements and beats so far
        self.elements = 0      # elements still to issue (PIM)
        self.beats = 0         # read beats still to arrive (PIM)
        self.op = 0
        self.targets: range | tuple[int, ...] = ()

    @property
    def known(self) -> bool:
        return self.elements == 0 and self.beats == 0 and self.end >= 0


def _expanded(s: Any) -> tuple[list[int], dict[int, list[int]]]:
    """A stream's words with every REPEAT expanded into its body's copies (the sequencer offers each), and its data
    words by the expanded positions."""
    words = s.words.tolist()
    if not any((w >> _FAM_OFF) & ((1 << _FAM_W) - 1) == Family.SYNC and _SYNC.decode(w)["op"] == SyncOp.REPEAT
               for w in words):
        return words, s.data
    out: list[int] = []
    data: dict[int, list[int]] = {}
    i = 0
    while i < len(words):
        w = words[i]
        f = _SYNC.decode(w) if (w >> _FAM_OFF) & ((1 << _FAM_W) - 1) == Family.SYNC else None
        if f is not None and f["op"] == SyncOp.REPEAT:
            body = range(i + 1, i + 1 + f["id"])
            for _ in range(f["token"]):
                for j in body:
                    if j in s.data:
                        data[len(out)] = s.data[j]
                    out.append(words[j])
            i = body.stop
            continue
        if i in s.data:
            data[len(out)] = s.data[i]
        out.append(w)
        i += 1
    return out, data


class _Sequencer:
    def __init__(self, model: "SystemModel", idx: int, program: Program) -> None:
        dev = model.device
        s = program.streams[idx]
        self.idx, self.name, self.kind = idx, s.name, s.kind
        self.P = dev.clocks.of(s.kind)
        self.words, self.data = _expanded(s)
        self.fam = [(w >> _FAM_OFF) & ((1 << _FAM_W) - 1) for w in self.words]
        self.own = {"pim": Family.PIM, "vector": Family.VECTOR, "link": Family.LINK, "net": Family.LINK,
                    "array": Family.ATTN}[s.kind]
        self.pos = 0
        self.cycle = 0
        self.cmds: list[_Cmd] = []
        self.open: list[_Cmd] = []          # taken and not known complete (or completing later)
        self.floor = 0                      # latest cycle a WAIT was met
        self.pending: list[tuple[int, int, int, int]] = []   # token, k, commands before it, floor
        self.sig_k: dict[int, int] = {}
        self.wait_k: dict[tuple[int, int], int] = {}
        self.marks: list[list[Any]] = []   # id, first command, commands before its end, floor at its end
        self.blocked: tuple[int, int, int] | None = None
        self.busy = 0
        self.known_upto = 0                 # cmds[:known_upto] are all known
        self.known_max = 0                  # their latest completion
        if s.kind == "pim":
            p = dev.pim
            self.unit: Any = PimChannel(p, dev.bitserial if p.lane == "bitserial" else None)
            self.inflight: deque[_Cmd] = deque()
            self.reads: deque[_Cmd] = deque()
            self.wdata: deque[int] = deque()
        elif s.kind == "vector":
            self.unit = VectorUnit(dev.vector)
        elif s.kind in ("link", "net"):   # the interconnect port is a link with the interconnect's figures
            self.unit = Link(dev if s.kind == "link" else replace(dev, link=dev.interconnect.link))
            self.arrivals: deque[_Cmd] = deque()
        else:
            self.unit = _ArrayOccupancy(dev)
        self.current: _Cmd | None = None

    # ---- bookkeeping -----------------------------------------------------------------------------------------------
    def _advance_known(self) -> None:
        while self.known_upto < len(self.cmds) and self.cmds[self.known_upto].known:
            self.known_max = max(self.known_max, self.cmds[self.known_upto].end)
            self.known_upto += 1

    def _frontier(self, upto: int, floor: int) -> int:
        return max([floor] + [c.end for c in self.cmds[:upto]])

    @property
    def finished(self) -> bool:
        """Every command handed over and complete, and the unit's clock past the last completion."""
        return (self.pos == len(self.words) and not self.pending and self.known_upto == len(self.cmds)
                and self.cycle >= max(self.known_max, self.floor))

    # ---- SYNC commands at the head, in the cycle starting at tick T ----------------------------------------------
    def sync(self, model: "SystemModel", T: int) -> bool:
        moved = False
        self._advance_known()
        if self.pending:
            keep = []
            for token, k, upto, floor in self.pending:
                if upto <= self.known_upto:
                    model.events[(self.idx, token, k)] = self._frontier(upto, floor) * self.P
                    moved = True
                else:
                    keep.append((token, k, upto, floor))
            self.pending = keep
        self.blocked = None
        c = self.cycle
        while self.pos < len(self.words) and self.fam[self.pos] == Family.SYNC:
            f = _SYNC.decode(self.words[self.pos])
            op = f["op"]
            if op == SyncOp.WAIT:
                key = (f["stream"], f["token"], self.wait_k.get((f["stream"], f["token"]), 0))
                v = model.events.get(key)
                if v is None or v + model.sync > T:
                    self.blocked = key
                    break
                self.wait_k[(f["stream"], f["token"])] = key[2] + 1
                self.floor = max(self.floor, c)
            elif op == SyncOp.SIGNAL:
                k = self.sig_k.get(f["token"], 0)
                self.sig_k[f["token"]] = k + 1
                self.pending.append((f["token"], k, len(self.cmds), self.floor))
            elif op == SyncOp.MARK:
                self._close_mark()
                self.marks.append([f["id"], len(self.cmds), None, None])
            self.pos += 1
            moved = True
        if moved and self.pending:
            self.sync(model, T)   # a SIGNAL just posted may be visible at once
        return moved

    def _close_mark(self) -> None:
        if self.marks and self.marks[-1][2] is None:
            self.marks[-1][2], self.marks[-1][3] = len(self.cmds), self.floor

    # ---- the unit's cycle --------------------------------------------------------------------------------------------
    def step(self) -> None:
        c = self.cycle
        word = self.words[self.pos] if self.pos < len(self.words) and self.fam[self.pos] == self.own else None
        if self.kind == "pim":
            self._step_pim(c, word)
        else:
            outs = self.unit.step({"cmd__valid": int(word is not None), "cmd__payload": word or 0})
            if word is not None and outs["cmd__ready"]:
                cmd = _Cmd(c)
                cmd.start = c
                self.cmds.append(cmd)
                self.pos += 1
                if self.kind in ("link", "net"):
                    self.arrivals.append(cmd)
                else:
                    self.current = cmd
            if self.kind in ("link", "net"):
                self.busy += outs["send"]
                if outs["arrive"]:
                    self.arrivals.popleft().end = c + 1
            else:
                self.busy += outs["busy"]
                if outs["done"]:
                    self.current.end = c + 1
        self.cycle += 1

    def _step_pim(self, c: int, word: int | None) -> None:
        ins = {"strict": 0, "cmd__valid": int(word is not None), "cmd__payload": word or 0,
               "wdata__valid": int(bool(self.wdata)), "wdata__payload": self.wdata[0] if self.wdata else 0}
        outs = self.unit.step(ins)
        if outs["wdata__ready"] and self.wdata:
            self.wdata.popleft()
        if outs["issued"]:
            cmd = self.inflight[0]
            if cmd.start < 0:
                cmd.start = c
            done = c + 1
            if cmd.op == PimOp.MAC:
                done = c + max(self.unit.unit_pace(b) for b in cmd.targets)
            cmd.end = max(cmd.end, done)
            cmd.elements -= 1
            if cmd.elements == 0:
                self.inflight.popleft()
        if outs["rdata__valid"]:
            cmd = self.reads[0]
            cmd.end = max(cmd.end, c + 1)
            cmd.beats -= 1
            if cmd.beats == 0:
                self.reads.popleft()
        if word is not None and outs["cmd__ready"]:
            f = _PIM.decode(word)
            cmd = _Cmd(c)
            cmd.op = f["op"]
            n = max(1, f["count"])
            if cmd.op == PimOp.RDMAC and f["all_banks"]:
                n = self.unit.pim.banks
            cmd.elements = n
            cmd.beats = n if cmd.op in (PimOp.RD, PimOp.RDMAC) else 0
            cmd.targets = range(self.unit.pim.banks) if f["all_banks"] else (f["bank"],)
            if cmd.op in (PimOp.WR, PimOp.WRGB):
                self.wdata.extend(self.data.get(self.pos, [0] * n))
            self.cmds.append(cmd)
            self.inflight.append(cmd)
            if cmd.beats:
                self.reads.append(cmd)
            self.open.append(cmd)
            self.pos += 1
        # busy in cycle c: a command taken and not yet complete (known to complete later)
        self.open = [x for x in self.open if not (x.known and x.end <= c)]
        self.busy += int(bool(self.open))

    def result(self) -> StreamResult:
        self._close_mark()
        end = self._frontier(len(self.cmds), self.floor)
        marks = []
        for ident, first, upto, floor in self.marks:
            e = self._frontier(upto, floor)
            marks.append((ident, self.cmds[first].start if first < upto else e, e))
        return StreamResult(self.name, self.kind, end, self.busy, len(self.cmds), marks)


class SystemModel:
    """Per-cycle system model (module docstring): ``SystemModel(device).run(program) -> SystemResult`` with the
    engine's result structure (busy intervals are not recorded).

    Parameters
    ----------
    device:
        The device description.
    max_cycles:
        Give up (an :class:`~accel.errors.AccelError`) after this many device cycles: the model is for small
        programs.
    progress:
        Progress bar over the commands handed to the units (:func:`accel.progress.progress_bar`).
    """

    def __init__(self, device: DeviceConfig, max_cycles: int = 2_000_000, progress: bool | None = None) -> None:
        self.device = device
        self.max_cycles = max_cycles
        self.progress = progress

    def run(self, program: Program) -> SystemResult:
        dev = self.device
        program.validate(dev)
        clocks = dev.clocks
        self.events: dict[tuple[int, int, int], int] = {}
        self.sync = clocks.sync
        seqs = [_Sequencer(self, i, program) for i in range(len(program.streams))]
        periods = sorted({q.P for q in seqs})
        by_period = {P: [q for q in seqs if q.P == P] for P in periods}
        edge = {P: 0 for P in periods}
        limit = self.max_cycles * clocks.pim
        with progress_bar(sum(len(q.words) for q in seqs), "per-cycle model", "cmd", self.progress) as bar:
            steps = 0
            while True:
                steps += 1
                if not steps & 0xFFF:  # every 4096 edges: the bar's cost stays out of the per-cycle loop
                    bar.update(sum(q.pos for q in seqs) - bar.n)
                T = min(edge.values())
                active = [q for P in periods if edge[P] == T for q in by_period[P]]
                moved = True
                while moved:
                    moved = False
                    for q in active:
                        moved |= q.sync(self, T)
                for q in active:
                    try:
                        q.step()
                    except AccelError as e:
                        e.args = (f"stream {q.name} (per-cycle model): {e}",)
                        raise
                for P in periods:
                    if edge[P] == T:
                        edge[P] += P
                if all(q.finished for q in seqs):
                    break
                idle = all(q.finished or (q.blocked is not None and q.blocked not in self.events
                                          and not q.pending and q.known_upto == len(q.cmds)) for q in seqs)
                if idle:
                    raise deadlock_message(program.names, {q.idx: q.blocked for q in seqs if not q.finished})
                if T > limit:
                    raise AccelError(f"the per-cycle system model gave up after {self.max_cycles} device cycles; it is "
                                     f"meant for small programs (use the system engine)")
        streams = {q.name: q.result() for q in seqs}
        ticks = max([s.end * clocks.of(s.kind) for s in streams.values()], default=0)
        return SystemResult(dev.name, -(-ticks // clocks.pim), ticks, float(clocks.tick_ns), streams,
                            {k: clocks.of(k) for k in UNIT_KINDS}, static_events(program, dev))

"""The system engine: executes a multi-stream program (:mod:`accel.program`) exactly and fast.

Each stream runs in its unit's fast engine: PIM channels in :class:`~accel.emulator.engine.ChannelEngine` (earliest
legal cycles in closed form, run-length commands and repeated blocks jumped), the vector unit, the link and the
attention array in their closed forms (:func:`accel.interfaces.vector.vector_cycles`,
:func:`accel.interfaces.link.transfer_beats`, :func:`array_cycles`), summed over whole runs of commands with prefix
sums. Streams depend on each other only through SYNC events, and no unit is shared between streams, so the engine
does not need a global clock: it runs a stream until it reaches a WAIT whose event is not known yet, moves to
another stream, and resumes the waiting one when the event's SIGNAL has been computed (dataflow order). All
streams stuck with work left is a deadlock (:class:`accel.program.DeadlockError`). PIM streams equal word for word
apart from their channel (and row, except a CFR's value) fields have equal schedules and run once.

Semantics, equal to the per-cycle system model (:mod:`accel.emulator.system_model`; tests prove them equal):

* times are cycles of each unit's clock; events cross clocks in integer ticks (:attr:`DeviceConfig.clocks`);
* a command *completes* when its results are visible: a PIM element in the cycle after its issue, a read when its
  data has left the pins (issue + nCL or nBL, + 1), a bit-serial MAC when its lanes are free (issue + terms); a
  vector or array op ``cycles`` after it was taken; a transfer ``beats + latency`` after it was taken;
* a stream's *frontier* is the latest completion of its commands so far and the cycles its WAITs were met;
  ``SIGNAL`` makes its event visible at the frontier (the stream goes on at once: the signal is posted);
* a ``WAIT`` is met in the first cycle of the waiting unit that starts at or after the event's tick plus the sync
  latency; the unit is offered the next command from then on (a PIM channel issues it one cycle later at the
  earliest: its head register);
* a unit is *busy* in a cycle in which it holds a command it has taken and not completed (PIM channel: from the
  cycle the command enters the head register; the link: the cycles it sends beats);
* a ``MARK`` opens operator ``id`` in its stream: its start is the first issue (PIM) or start (other units) of the
  next unit command, its end the stream's frontier at the next MARK or the stream's end.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from accel.config import AttentionConfig, DeviceConfig
from accel.energy import EVENTS
from accel.errors import AccelError, caused_by
from accel.interfaces.link import copies, transfer_beats
from accel.interfaces.vector import vector_cycles, vector_events
from accel.isa import TABLES, AttnOp, Family, LinkOp, PimOp
from accel.numerics import DATATYPES
from accel.program import MARK, RUN, SIGNAL, WAIT, Program, Stream, deadlock_message, stream_items
from accel.progress import progress_bar

from .engine import ChannelEngine
from .gemm_timing import rtl_gemm_cycles
from .units.attention import attention_cycles
from .units.pim import CFR_DTYPE

__all__ = ["SystemEngine", "SystemResult", "StreamResult", "array_cycles", "static_events", "run_program"]

_DATAFLOW = ("os", "ws", "is")
_PIM_FIELDS = TABLES[Family.PIM].offsets()
_CHANNEL = np.uint64(((1 << _PIM_FIELDS["channel"][1]) - 1) << _PIM_FIELDS["channel"][0])
_CHANNEL_ROW = _CHANNEL | np.uint64(((1 << _PIM_FIELDS["row"][1]) - 1) << _PIM_FIELDS["row"][0])


def _timing_key(s: Stream) -> np.ndarray:
    """The stream's words without the fields that cannot change a schedule: a PIM word's channel, and its row except
    in a CFR (whose row is the register's value: a bank's datatype sets the pace of bit-serial MACs). Streams with
    equal keys have equal schedules and event counts; commands with equal keys take equal time."""
    fam = s.families == int(Family.PIM)
    cfr = fam & (s.field(Family.PIM, "op") == PimOp.CFR)
    return np.where(fam, s.words & ~np.where(cfr, _CHANNEL, _CHANNEL_ROW), s.words)


def array_cycles(op: int, m: int, k: int, n: int, dataflow: int, count: int, cfg: AttentionConfig) -> int:
    """Cycles of one ATTN command on the array (``count`` repetitions back to back): ATTEND is
    :func:`~accel.emulator.units.attention.attention_cycles` (m queries, n keys, head dimension k), GEMM is the
    GEMM RTL's exact count :func:`~accel.emulator.gemm_timing.rtl_gemm_cycles`; NOP takes one cycle. The one
    cost formula of the array in a program."""
    reps = max(1, count)
    if op == AttnOp.ATTEND:
        return reps * attention_cycles(cfg, m, n, k)
    if op == AttnOp.GEMM:
        return reps * rtl_gemm_cycles(m, k, n, cfg.rows, cfg.cols, _DATAFLOW[dataflow])
    return reps


@dataclass
class StreamResult:
    """What one stream did, in cycles of its unit's clock.

    Members
    -------
    name, kind:
        The stream and its unit kind.
    end:
        The stream's frontier at its end (its last completion or met WAIT).
    busy:
        Cycles in which its unit held a command (module docstring).
    commands:
        Unit commands (SYNC commands not counted).
    marks:
        ``(operator id, start, end)`` per MARK, in stream order.
    intervals:
        Busy intervals ``[start, end)``, merged.
    """

    name: str
    kind: str
    end: int = 0
    busy: int = 0
    commands: int = 0
    marks: list[tuple[int, int, int]] = field(default_factory=list)
    intervals: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class SystemResult:
    """A program's run: total time, per-stream results, per-operator spans and event counts.

    Members
    -------
    device:
        Device name.
    cycles:
        Total cycles of the device (PIM) clock: the latest frontier of any stream, rounded up to a device cycle.
    ticks, tick_ns:
        The same end in ticks of the common time base, and a tick's length (ns).
    streams:
        Stream name -> :class:`StreamResult` (in program order).
    ticks_per_cycle:
        Unit kind -> ticks per cycle of its clock.
    events:
        Counts for the energy table (module :func:`static_events`).
    """

    device: str
    cycles: int
    ticks: int
    tick_ns: float
    streams: dict[str, StreamResult]
    ticks_per_cycle: dict[str, int]
    events: dict[str, int]

    @property
    def time_ns(self) -> float:
        return self.ticks * self.tick_ns

    def utilisation(self, name: str) -> float:
        """Busy cycles of a stream's unit over the run's length in that unit's cycles."""
        s = self.streams[name]
        total = self.ticks / self.ticks_per_cycle[s.kind]
        return s.busy / total if total else 0.0

    def operators(self) -> dict[int, tuple[int, int]]:
        """Operator id -> ``(start, end)`` in ticks over every stream that marks it."""
        out: dict[int, tuple[int, int]] = {}
        for s in self.streams.values():
            n = self.ticks_per_cycle[s.kind]
            for ident, a, b in s.marks:
                lo, hi = out.get(ident, (a * n, b * n))
                out[ident] = (min(lo, a * n), max(hi, b * n))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device, "cycles": self.cycles, "time_ns": self.time_ns,
            "streams": {n: {"kind": s.kind, "end": s.end, "busy": s.busy, "commands": s.commands,
                            "utilisation": self.utilisation(n), "marks": [list(m) for m in s.marks]}
                        for n, s in self.streams.items()},
            "operators": {str(k): {"start_ns": a * self.tick_ns, "end_ns": b * self.tick_ns}
                          for k, (a, b) in sorted(self.operators().items())},
            "events": self.events,
        }


def static_events(program: Program, device: DeviceConfig) -> dict[str, int]:
    """Event counts that depend only on the program's commands, for the energy table (every name of
    :data:`accel.energy.EVENTS`): PIM bank activations, precharges, column reads/writes, global-buffer writes and
    reads, bank MAC columns, MAC lane operations and bit-serial lane terms (following the banks' CFR datatypes),
    MAC-register reads, refreshes, commands; vector ops, beats, lane slots and lane operations by kind, reciprocals,
    buffer line reads/writes; link transfers, beats and bits; array ops and MACs; interconnect bits (none until
    the interconnect is modelled); SIGNAL/WAIT/MARK commands."""
    p = device.pim
    ev = dict.fromkeys(EVENTS, 0)
    seen: dict[bytes, dict[str, int]] = {}
    for s in program.streams:
        fam = s.families
        if s.kind == "pim":  # counts of equal channel streams are equal
            key = _timing_key(s).tobytes()
            if key in seen:
                for k, v in seen[key].items():
                    ev[k] += v
                continue
            before = dict(ev)
        sync = fam == int(Family.SYNC)
        if sync.any():
            sop = s.field(Family.SYNC, "op")[sync]
            ev["sync_signals"] += int((sop == 1).sum())
            ev["sync_waits"] += int((sop == 2).sum())
            ev["sync_marks"] += int((sop == 3).sum())
        if s.kind == "pim":
            sel = fam == int(Family.PIM)
            op, ab, cnt = (s.field(Family.PIM, n)[sel] for n in ("op", "all_banks", "count"))
            cnt = np.maximum(cnt, 1)
            banks = np.where(ab == 1, p.banks, 1)
            ev["pim_act_banks"] += int(banks[op == PimOp.ACT].sum())
            ev["pim_pre"] += int((op == PimOp.PRE).sum())
            ev["pim_rd_columns"] += int(cnt[op == PimOp.RD].sum())
            ev["pim_wr_columns"] += int((cnt * banks)[op == PimOp.WR].sum())
            ev["pim_wrgb_columns"] += int(cnt[op == PimOp.WRGB].sum())
            mac = int((cnt * banks)[op == PimOp.MAC].sum())
            ev["pim_mac_columns"] += mac
            ev["pim_gb_read_columns"] += int(cnt[op == PimOp.MAC].sum())
            ev["pim_mac_lane_ops"] += mac * p.mac_lanes
            if p.lane == "bitserial":
                ev["pim_mac_terms"] += _bitserial_terms(s, device) * p.mac_lanes
            ev["pim_rdmac_beats"] += int(np.where(ab == 1, p.banks, cnt)[op == PimOp.RDMAC].sum())
            ev["pim_ref"] += int((op == PimOp.REF).sum())
            ev["pim_commands"] += int(cnt.sum())
            seen[key] = {k: ev[k] - before[k] for k in ev}
        elif s.kind == "vector":
            for w, n in _unique_counts(s, Family.VECTOR):
                f = TABLES[Family.VECTOR].decode(w)
                e = vector_events(f["op"], f["length"], f["count"], f["src2"], device.vector)
                ev["vector_ops"] += n * e.ops
                ev["vector_beats"] += n * e.beats
                ev["vector_lane_ops"] += n * e.lane_ops
                ev["vector_add_ops"] += n * e.add_ops
                ev["vector_mul_ops"] += n * e.mul_ops
                ev["vector_exp_ops"] += n * e.exp_ops
                ev["vector_act_ops"] += n * e.act_ops
                ev["vector_recips"] += n * e.recips
                ev["vector_sram_reads"] += n * e.sram_reads
                ev["vector_sram_writes"] += n * e.sram_writes
        elif s.kind == "link":
            for w, n in _unique_counts(s, Family.LINK):
                f = TABLES[Family.LINK].decode(w)
                if f["op"] != LinkOp.XFER:
                    continue
                c = copies(f["dst"], device)
                ev["link_transfers"] += n
                ev["link_beats"] += n * transfer_beats(f["bytes"], device.link, c)
                ev["link_bits"] += n * 8 * f["bytes"] * c
        elif s.kind == "array":
            for w, n in _unique_counts(s, Family.ATTN):
                f = TABLES[Family.ATTN].decode(w)
                if f["op"] == AttnOp.NOP:
                    continue
                ev["array_ops"] += n * max(1, f["count"])
                per = f["m"] * f["n"] * f["k"] * (2 if f["op"] == AttnOp.ATTEND else 1)  # ATTEND: QK and SV
                ev["array_macs"] += n * max(1, f["count"]) * per
    return ev


def _bitserial_terms(s: Stream, device: DeviceConfig) -> int:
    """Terms of a PIM stream's MAC columns summed over its banks: each bank takes the terms of the datatype its
    latest CFR DTYPE set (the first built datatype before any), as the channel engine and the per-cycle model pace
    bit-serial MACs."""
    p, bs = device.pim, device.bitserial
    pim = s.families == int(Family.PIM)
    op, ab, bank, row, col, cnt = (s.field(Family.PIM, n)[pim] for n in ("op", "all_banks", "bank", "row", "col",
                                                                          "count"))
    terms_of = {c: DATATYPES[n].terms for n, c in bs.dtype_codes.items()}
    default = terms_of[bs.dtype_codes[bs.datatypes[0]]]
    table = np.array([terms_of.get(c, 1) for c in range(max(terms_of) + 1)], dtype=np.int64)
    cfr = (op == PimOp.CFR) & (col == CFR_DTYPE)
    set_terms = np.where(row < len(table), table[np.minimum(row, len(table) - 1)], 1)
    mac = np.maximum(cnt, 1) * (op == PimOp.MAC)
    at = np.arange(len(op))
    total = 0
    for b in range(p.banks):
        mine = (ab == 1) | (bank == b)
        last = np.maximum.accumulate(np.where(cfr & mine, at, -1))
        terms = np.where(last >= 0, set_terms[np.maximum(last, 0)], default)
        total += int((mac * terms)[mine].sum())
    return total


def _unique_counts(s: Stream, fam: Family) -> list[tuple[int, int]]:
    w = s.words[s.families == int(fam)]
    u, n = np.unique(w, return_counts=True)
    return list(zip(u.tolist(), n.tolist()))


# --------------------------------------------------------------------------------------------------------------------
# Stream runners: one per unit kind, all with the same state of the stream (frontier, offer, busy, marks)


class _Runner:
    kind = ""

    def __init__(self, stream: Stream, items: list, ticks: int) -> None:
        self.s = stream
        self.items = items
        self.at = 0
        self.P = ticks
        self.frontier = 0        # latest completion / met WAIT (cycles)
        self.offer = 0           # latest met WAIT (cycles)
        self.busy = 0
        self.covered = 0         # end of the busy intervals counted so far
        self.intervals: list[list[int]] = []
        self.marks: list[list[int]] = []   # [id, start or -1, end]
        self.want_start = False
        self.commands = 0

    def add_busy(self, start: int, end: int) -> None:
        lo = max(start, self.covered)
        if end > lo:
            self.busy += end - lo
            if self.intervals and self.intervals[-1][1] >= lo:
                self.intervals[-1][1] = end
            else:
                self.intervals.append([lo, end])
        self.covered = max(self.covered, end)

    def started(self, t: int) -> None:
        if self.want_start:
            self.marks[-1][1] = t
            self.want_start = False

    def mark(self, ident: int) -> None:
        self.close_mark()
        self.marks.append([ident, -1, 0])
        self.want_start = True

    def close_mark(self) -> None:
        if self.marks:
            m = self.marks[-1]
            m[2] = self.frontier
            if m[1] < 0:
                m[1] = self.frontier
        self.want_start = False

    def run(self, lo: int, hi: int) -> None:
        raise NotImplementedError

    def result(self) -> StreamResult:
        return StreamResult(self.s.name, self.kind, self.frontier, self.busy, self.commands,
                            [tuple(m) for m in self.marks], [tuple(i) for i in self.intervals])


class _PimRunner(_Runner):
    kind = "pim"

    def __init__(self, stream: Stream, items: list, ticks: int, device: DeviceConfig, periodic: bool) -> None:
        super().__init__(stream, items, ticks)
        p = device.pim
        self.chan = ChannelEngine(p, device.bitserial if p.lane == "bitserial" else None, functional=False)
        cols = [stream.field(Family.PIM, n) for n in ("op", "all_banks", "bank", "row", "col", "count")]
        self.table = np.stack(cols, axis=1).tolist()
        # a command's timing signature for the channel engine's block repetition
        self.sig = _timing_key(stream).tolist() if periodic else None
        self.periodic = periodic
        self.last_issue = -1

    def run(self, lo: int, hi: int) -> None:
        ch = self.chan
        accept = max(self.offer, self.last_issue, 0)
        if ch.next < self.offer + 1:
            ch.next = self.offer + 1
        before, first = ch.commands, lo
        try:
            if self.want_start:
                r = self.table[lo]
                self.started(ch.issue(r[0], r[1], r[2], r[3], r[4], r[5]).first)
                lo += 1
            if lo < hi:
                ch.run_table(self.table[lo:hi], periodic=self.periodic,
                             sig=self.sig[lo:hi] if self.periodic else None)
        except AccelError as e:
            index = first + ch.commands - before
            e.args = (f"stream {self.s.name} command {index}: {e}",)
            raise caused_by(e, self.s.name, index)
        self.commands += ch.commands - before
        self.last_issue = ch.next - 1
        done = max(ch.next, ch.completion())
        self.frontier = max(self.frontier, done)
        self.add_busy(accept, done)


class _SerialRunner(_Runner):
    """A unit that takes one command at a time: each takes ``cost`` cycles; ``latency`` more until it completes
    (the link: ``cost`` = beats sent, ``latency`` = the link's)."""

    def __init__(self, stream: Stream, items: list, ticks: int, kind: str, cost: np.ndarray, latency: int) -> None:
        super().__init__(stream, items, ticks)
        self.kind = kind
        self.cum = np.concatenate([[0], np.cumsum(cost)]).tolist()
        self.latency = latency
        self.free = 0            # cycle in which the unit takes its next command

    def run(self, lo: int, hi: int) -> None:
        start = max(self.offer, self.free)
        self.started(start)
        work = self.cum[hi] - self.cum[lo]
        self.free = start + work
        self.commands += hi - lo
        self.frontier = max(self.frontier, self.free + self.latency)
        self.add_busy(start, self.free)


def _cost_per_command(s: Stream, fam: Family, cost_of) -> np.ndarray:
    """Per-command cost (0 for SYNC words), computed once per distinct word."""
    out = np.zeros(len(s.words), dtype=np.int64)
    sel = s.families == int(fam)
    if sel.any():
        u, inv = np.unique(s.words[sel], return_inverse=True)
        table = TABLES[fam]
        vals = np.array([cost_of(table.decode(w)) for w in u.tolist()], dtype=np.int64)
        out[sel] = vals[inv.reshape(-1)]
    return out


# --------------------------------------------------------------------------------------------------------------------


class SystemEngine:
    """Runs a :class:`~accel.program.Program` on a device (module docstring).

    Parameters
    ----------
    device:
        The device description.
    dedup:
        Run PIM streams that are equal apart from their channel and row fields (a CFR's row, its value, counts) once
        (their schedules are equal).
    periodic:
        Let the channel engine jump over repeated command blocks (:meth:`ChannelEngine.run_table`).
    progress:
        Progress bar over the commands run (:func:`accel.progress.progress_bar`: None shows it on a terminal after a
        second).
    """

    def __init__(self, device: DeviceConfig, dedup: bool = True, periodic: bool = True,
                 progress: bool | None = None) -> None:
        self.device = device
        self.dedup = dedup
        self.periodic = periodic
        self.progress = progress

    def _runner(self, program: Program, i: int) -> _Runner:
        dev = self.device
        s = program.streams[i]
        clocks = dev.clocks
        items = stream_items(program, i)
        if s.kind == "pim":
            return _PimRunner(s, items, clocks.pim, dev, self.periodic)
        if s.kind == "vector":
            cost = _cost_per_command(s, Family.VECTOR, lambda f: vector_cycles(
                f["op"], f["length"], f["count"], f["src2"], dev.vector))
            return _SerialRunner(s, items, clocks.vector, "vector", cost, 0)
        if s.kind == "link":
            cost = _cost_per_command(s, Family.LINK, lambda f: transfer_beats(
                f["bytes"], dev.link, copies(f["dst"], dev)) if f["op"] == LinkOp.XFER else 1)
            return _SerialRunner(s, items, clocks.link, "link", cost, dev.link.latency)
        cost = _cost_per_command(s, Family.ATTN, lambda f: array_cycles(
            f["op"], f["m"], f["k"], f["n"], f["dataflow"], f["count"], dev.attention))
        return _SerialRunner(s, items, clocks.array, "array", cost, 0)

    def _groups(self, program: Program) -> list[int]:
        """Representative stream of every stream (itself unless an equal PIM stream came first)."""
        rep = list(range(len(program.streams)))
        if not self.dedup:
            return rep
        seen: dict[tuple[int, bytes], int] = {}
        for i, s in enumerate(program.streams):
            if s.kind != "pim":
                continue
            rep[i] = seen.setdefault((s.device_index, _timing_key(s).tobytes()), i)
        return rep

    def run(self, program: Program) -> SystemResult:
        """Run ``program`` (validated first). Raises :class:`~accel.program.ProgramError` for a bad program,
        :class:`~accel.program.DeadlockError` if its dependencies deadlock, and the channel's errors (illegal
        commands) prefixed with the stream and command index."""
        dev = self.device
        program.validate(dev)
        clocks = dev.clocks
        rep = self._groups(program)
        runners = {i: self._runner(program, i) for i in range(len(program.streams)) if rep[i] == i}
        events: dict[tuple[int, int, int], int] = {}
        waiting: dict[tuple[int, int, int], list[int]] = {}
        blocked: dict[int, tuple[int, int, int]] = {}
        todo = deque(runners)
        S = clocks.sync
        with progress_bar(sum(len(r.s.words) for r in runners.values()), "system engine", "cmd", self.progress) as bar:
            while todo:
                i = todo.popleft()
                r = runners[i]
                items = r.items
                while r.at < len(items):
                    kind, a, b, c = items[r.at]
                    if kind == RUN:
                        r.run(a, b)
                        bar.update(b - a)
                    elif kind == WAIT:
                        key = (rep[a], b, c)
                        v = events.get(key)
                        if v is None:
                            waiting.setdefault(key, []).append(i)
                            blocked[i] = (a, b, c)
                            break
                        met = -(-(v + S) // r.P)
                        r.offer = max(r.offer, met)
                        r.frontier = max(r.frontier, met)
                    elif kind == SIGNAL:
                        key = (i, a, b)
                        events[key] = r.frontier * r.P
                        for j in waiting.pop(key, ()):
                            del blocked[j]
                            todo.append(j)
                    else:  # MARK
                        r.mark(a)
                    r.at += 1
                else:
                    r.close_mark()
        if blocked:
            raise deadlock_message(program.names, {j: blocked[rep[j]] for j in range(len(rep)) if rep[j] in blocked})
        results = {i: r.result() for i, r in runners.items()}
        streams = {s.name: replace(results[rep[j]], name=s.name) for j, s in enumerate(program.streams)}
        ticks = max([r.end * clocks.of(r.kind) for r in streams.values()], default=0)
        return SystemResult(dev.name, -(-ticks // clocks.pim), ticks, float(clocks.tick_ns), streams,
                            {k: clocks.of(k) for k in ("pim", "vector", "link", "array")},
                            static_events(program, dev))


def run_program(program: Program, device: DeviceConfig | None = None, model: str = "engine",
                progress: bool | None = None) -> SystemResult:
    """Run a program on ``device`` (default: the program's own) in the system engine (``model="engine"``) or the
    per-cycle system model (``"cycle"``); ``progress`` as :func:`accel.progress.progress_bar`'s ``show``."""
    dev = device or program.resolve_device()
    try:
        if model == "cycle":
            from .system_model import SystemModel

            return SystemModel(dev, progress=progress).run(program)
        return SystemEngine(dev, progress=progress).run(program)
    except AccelError as e:  # name the program's file and line (Program.locate)
        raise program.locate(e) from None

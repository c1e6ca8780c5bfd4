"""The system engine: executes a multi-stream program (:mod:`accel.program`) exactly and fast.

Each stream runs in its unit's fast engine: PIM channels in :class:`~accel.emulator.engine.ChannelEngine` (earliest
legal cycles in closed form, run-length commands and repeated blocks jumped), the vector unit, the link and the
attention array in their closed forms (:func:`accel.interfaces.vector.vector_cycles`,
:func:`accel.interfaces.link.transfer_beats`, :func:`array_cycles`), summed over whole runs of commands with prefix
sums. Streams depend on each other only through SYNC events, and no unit is shared between streams, so the engine
does not need a global clock: it runs a stream until it reaches a WAIT whose event is not known yet, moves to
another stream, and resumes the waiting one when the event's SIGNAL has been computed (dataflow order). All
streams stuck with work left is a deadlock (:class:`accel.program.DeadlockError`). PIM streams equal word for word
apart from the fields that cannot change their timing (:func:`timing_signature`) have equal schedules and run once.

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
from accel.interfaces.pim import stream_mac_work
from accel.interfaces.vector import vector_cycles, vector_events
from accel.isa import TABLES, AttnOp, Family, LinkOp, PimOp, SyncOp
from accel.program import (
    MARK, RUN, SIGNAL, WAIT, Program, Stream, deadlock_message, item_table, repeats, stream_items, sync_table,
)
from accel.progress import progress_bar

from .engine import ChannelEngine
from .gemm_timing import rtl_gemm_cycles
from .units.attention import attention_cycles

__all__ = ["SystemEngine", "SystemResult", "StreamResult", "array_cycles", "static_events", "run_program",
           "UNIT_KINDS", "timing_signature"]

_DATAFLOW = ("os", "ws", "is")
#: Unit kinds of a program's streams (``SystemResult.ticks_per_cycle`` has one entry each).
UNIT_KINDS = ("pim", "vector", "link", "array", "net")
_PIM_FIELDS = TABLES[Family.PIM].offsets()
#: The channel and row fields of a PIM word.
_CHANNEL = np.uint64(((1 << _PIM_FIELDS["channel"][1]) - 1) << _PIM_FIELDS["channel"][0])
_ROW_FIELDS = [_PIM_FIELDS[n] for n in ("op", "all_banks", "bank", "row", "col", "count")]
_COL = np.uint64(((1 << _PIM_FIELDS["col"][1]) - 1) << _PIM_FIELDS["col"][0])
_SYNC_FIELDS = TABLES[Family.SYNC].offsets()
_SYNC_STREAM = np.uint64(((1 << _SYNC_FIELDS["stream"][1]) - 1) << _SYNC_FIELDS["stream"][0])
_SYNC_ID = np.uint64(((1 << _SYNC_FIELDS["id"][1]) - 1) << _SYNC_FIELDS["id"][0])


def _pim_field(words: np.ndarray, name: str) -> np.ndarray:
    off, width = _PIM_FIELDS[name]
    return ((words >> np.uint64(off)) & np.uint64((1 << width) - 1)).astype(np.int64)


def timing_signature(words: np.ndarray, device: DeviceConfig) -> np.ndarray:
    """Each PIM word without the fields that cannot change any command's timing: two channel streams with equal
    signatures have equal schedules (the engine runs one of them), and a block of commands that repeats in them
    repeats in time (the channel engine's block jump).

    Dropped: the channel; an ACT's row (rows are checked against the banks before the run); the column of
    RD/WR/WRGB when the run's columns lie inside the row (or the global buffer); a MAC's column inside the row but
    whether it starts on one of the row's metadata columns (``min(col, max_metadata_columns)``: the weights it
    multiplies). A CFR stays whole (the format register's value sets the MAC units' pace). Commands whose dropped
    fields would be illegal keep them, so that the engine still issues and refuses them."""
    p = device.pim
    fam, op, col, row, cnt = (_pim_field(words, n) for n in ("family", "op", "col", "row", "count"))
    pim = fam == int(Family.PIM)
    sig = np.where(pim, words & ~_CHANNEL, words)   # SYNC words stay whole
    cnt = np.maximum(cnt, 1)
    act = pim & (op == PimOp.ACT) & (row < p.rows)
    cols = pim & np.isin(op, (PimOp.RD, PimOp.WR)) & (col + cnt <= p.columns)
    gb = pim & (op == PimOp.WRGB) & (col + cnt <= p.gb_columns)
    mac = pim & (op == PimOp.MAC) & (col + cnt <= p.columns)
    drop_row = np.uint64(((1 << _PIM_FIELDS["row"][1]) - 1) << _PIM_FIELDS["row"][0])
    sig = np.where(act, sig & ~drop_row, sig)
    sig = np.where(cols | gb | mac, sig & ~_COL, sig)
    meta = device.bank.max_metadata_columns if device.bank.bitserial is not None else 0
    return np.where(mac, sig | (np.minimum(col, meta).astype(np.uint64) << np.uint64(_PIM_FIELDS["col"][0])), sig)


def _channel_free(s: Stream) -> bytes:
    """A stream's words without the PIM channel field, as bytes: equal for channel streams that differ only in their
    channel (equal schedules and event counts)."""
    return s.derived("channel free", lambda t: np.where(t.families == int(Family.PIM), t.words & ~_CHANNEL,
                                                        t.words).tobytes())


def _signature(s: Stream, device: DeviceConfig) -> np.ndarray:
    """A stream's :func:`timing_signature`, derived once per stream and device."""
    return s.derived(f"timing_signature {id(device)}", lambda t: timing_signature(t.words, device))


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
    jumped:
        Epochs the engine applied in closed form (:class:`SystemEngine` ``jump``; 0 for the per-cycle model).
    """

    device: str
    cycles: int
    ticks: int
    tick_ns: float
    streams: dict[str, StreamResult]
    ticks_per_cycle: dict[str, int]
    events: dict[str, int]
    jumped: int = 0

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
    buffer line reads/writes; link and interconnect (``net``) transfers, beats and bits; array ops and MACs;
    SIGNAL/WAIT/MARK commands. A REPEAT's body counts every time it runs."""
    p = device.pim
    ev = dict.fromkeys(EVENTS, 0)
    seen: dict[bytes, dict[str, int]] = {}
    for s in program.streams:
        fam = s.families
        if s.kind == "pim":  # counts of equal channel streams are equal
            key = _channel_free(s)
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
        times = repeats(s)   # a REPEAT's body counts every time it runs
        if s.kind == "pim":
            sel = fam == int(Family.PIM)
            op, ab, cnt = (s.field(Family.PIM, n)[sel] for n in ("op", "all_banks", "count"))
            n = times[sel]
            cnt = np.maximum(cnt, 1) * n
            banks = np.where(ab == 1, p.banks, 1)
            ev["pim_act_banks"] += int((banks * n)[op == PimOp.ACT].sum())
            ev["pim_pre"] += int(n[op == PimOp.PRE].sum())
            ev["pim_rd_columns"] += int(cnt[op == PimOp.RD].sum())
            ev["pim_wr_columns"] += int((cnt * banks)[op == PimOp.WR].sum())
            ev["pim_wrgb_columns"] += int(cnt[op == PimOp.WRGB].sum())
            mac = int((cnt * banks)[op == PimOp.MAC].sum())
            ev["pim_mac_columns"] += mac
            table = np.stack([s.field(Family.PIM, n)[sel] for n in ("op", "all_banks", "bank", "row", "col",
                                                                    "count")], axis=1)
            keep = (op == PimOp.MAC) | (op == PimOp.CFR)
            work = stream_mac_work(device.bank, table[keep], n[keep])
            ev["pim_gb_read_columns"] += work.gb_columns
            ev["pim_mac_lane_ops"] += work.weights
            ev["pim_mac_terms"] += work.terms
            ev["pim_rdmac_beats"] += int(np.where(ab == 1, p.banks * n, cnt)[op == PimOp.RDMAC].sum())
            ev["pim_ref"] += int(n[op == PimOp.REF].sum())
            ev["pim_commands"] += int(cnt.sum())
            seen[key] = {k: ev[k] - before[k] for k in ev}
        elif s.kind == "vector":
            for w, n in _unique_counts(s, Family.VECTOR, times):
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
        elif s.kind in ("link", "net"):
            cfg = device.link if s.kind == "link" else device.interconnect.link
            unit = "link" if s.kind == "link" else "interconnect"
            for w, n in _unique_counts(s, Family.LINK, times):
                f = TABLES[Family.LINK].decode(w)
                if f["op"] != LinkOp.XFER:
                    continue
                c = copies(f["dst"], device)
                ev[f"{unit}_transfers"] += n
                ev[f"{unit}_beats"] += n * transfer_beats(f["bytes"], cfg, c)
                ev[f"{unit}_bits"] += n * 8 * f["bytes"] * c
        elif s.kind == "array":
            for w, n in _unique_counts(s, Family.ATTN, times):
                f = TABLES[Family.ATTN].decode(w)
                if f["op"] == AttnOp.NOP:
                    continue
                ev["array_ops"] += n * max(1, f["count"])
                per = f["m"] * f["n"] * f["k"] * (2 if f["op"] == AttnOp.ATTEND else 1)  # ATTEND: QK and SV
                ev["array_macs"] += n * max(1, f["count"]) * per
    return ev


def _unique_counts(s: Stream, fam: Family, times: np.ndarray) -> list[tuple[int, int]]:
    """Distinct words of a family and how many times each runs."""
    sel = s.families == int(fam)
    u, inv = np.unique(s.words[sel], return_inverse=True)
    n = np.bincount(inv.reshape(-1), weights=times[sel], minlength=len(u)).astype(np.int64)
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
        self.limit = len(items)  # item index at which the runner pauses (an epoch's end; :class:`_Epochs`)
        self.log: list[tuple[int, int]] | None = None   # busy intervals of the current epoch, while jumping is on
        self.next_k: dict[tuple[int, int], int] = {}     # (producer, token) -> k of this stream's next WAIT on it

    def add_busy(self, start: int, end: int) -> None:
        if self.log is not None:
            self.log.append((start, end))
        lo = max(start, self.covered)
        if end > lo:
            self.busy += end - lo
            if self.intervals and self.intervals[-1][1] >= lo:
                self.intervals[-1][1] = end
            else:
                self.intervals.append([lo, end])
        self.covered = max(self.covered, end)

    def add_busy_all(self, starts: np.ndarray, ends: np.ndarray) -> None:
        """:meth:`add_busy` of every ``(starts[i], ends[i])`` in order, at once (the epoch jump's copies)."""
        if self.log is not None:
            self.log.extend(zip(starts.tolist(), ends.tolist()))
        if not len(ends):
            return
        # what add_busy's ``covered`` holds before each interval: the latest end so far
        lo = np.maximum(starts, np.maximum.accumulate(np.concatenate([[self.covered], ends]))[:-1])
        add = ends > lo
        lo, hi = lo[add], ends[add]
        self.covered = max(self.covered, int(ends.max()))
        if not len(hi):
            return
        self.busy += int((hi - lo).sum())
        # an interval extends the last one when that reaches its start (the last one's end: the previous added
        # interval's), else it opens a new one
        new = np.concatenate([[not self.intervals or self.intervals[-1][1] < lo[0]], hi[:-1] < lo[1:]])
        first = np.nonzero(new)[0]
        last = np.append(first[1:] - 1, len(hi) - 1)
        if not new[0]:
            self.intervals[-1][1] = int(hi[first[0] - 1] if len(first) else hi[-1])
        self.intervals.extend([a, b] for a, b in zip(lo[first].tolist(), hi[last].tolist()))

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

    def run(self, lo: int, hi: int, reps: int = 0) -> None:
        """Run unit commands ``lo .. hi - 1`` (``reps`` times in a row: a REPEAT; 0 or 1: once)."""
        raise NotImplementedError

    # ---- the epoch jump (:class:`_Epochs`) ---------------------------------------------------------------------------
    def _base(self) -> int:
        """The earliest cycle the unit can take its next command (the offer below it does not matter)."""
        raise NotImplementedError

    def state(self, ref: int) -> tuple:
        """Everything that decides this stream's future, in ticks relative to ``ref``."""
        P = self.P
        open_start = self.marks[-1][1] * P - ref if self.marks and self.marks[-1][1] >= 0 else None
        return (self.frontier * P - ref, max(self.offer, self._base()) * P - ref, self.covered * P - ref,
                self.want_start, open_start, self._unit_state(ref))

    def _unit_state(self, ref: int) -> tuple:
        raise NotImplementedError

    def begin_epoch(self) -> None:
        self.log = []
        self.epoch_marks = len(self.marks)
        self.epoch_commands = self.commands

    def jump(self, reps: int, d: int, ids: list[list[int]], tail: Any) -> None:
        """Advance by ``reps`` repetitions of the epoch just run, each ``d`` cycles later than the one before:
        marks (with the ids of the skipped epochs' MARKs), busy intervals, commands and times."""
        log, self.log = self.log or [], None
        open_mark, want = list(self.marks[-1]), self.want_start
        self.close_mark()   # as the next epoch's first MARK would
        seg = [list(m) for m in self.marks[self.epoch_marks:]]
        for j in range(1, reps + 1):
            for m, ident in zip(seg, ids[j - 1]):
                self.marks.append([ident, m[1] + j * d, m[2] + j * d])
        if log:
            shift = (np.arange(1, reps + 1, dtype=np.int64) * d)[:, None]
            a, b = np.array(log, dtype=np.int64).T
            self.add_busy_all((a + shift).ravel(), (b + shift).ravel())
        last = self.marks[-1]   # the last skipped epoch's last mark is still open, as this epoch's was
        last[1] = open_mark[1] + reps * d if open_mark[1] >= 0 else -1
        last[2] = 0
        self.want_start = want
        self.commands += reps * (self.commands - self.epoch_commands)
        self.frontier += reps * d
        self.offer += reps * d
        self._unit_jump(reps, d, tail)

    def _unit_jump(self, reps: int, d: int, tail: Any) -> None:
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
        # a command's timing signature for the channel engine's block repetition (and the epoch jump)
        self.sig = _signature(stream, device)
        self.periodic = periodic
        self.last_issue = -1

    def run(self, lo: int, hi: int, reps: int = 0) -> None:
        ch = self.chan
        accept = max(self.offer, self.last_issue, 0)
        if ch.next < self.offer + 1:
            ch.next = self.offer + 1
        before, first = ch.commands, lo
        body = self.rows(lo, hi)
        sig = self.sig[lo:hi].tolist()
        try:
            table = body
            if self.want_start:
                r = table[0]
                self.started(ch.issue(r[0], r[1], r[2], r[3], r[4], r[5]).first)
                table = table[1:]
            if table:
                ch.run_table(table, periodic=self.periodic, sig=sig[len(body) - len(table):] if self.periodic
                             else None)
            if reps > 1:
                self._repeat(body, sig, reps - 1)
        except AccelError as e:
            index = first + (ch.commands - before) % max(1, hi - lo)   # inside a REPEAT's body: its word
            e.args = (f"stream {self.s.name} command {index}: {e}",)
            raise caused_by(e, self.s.name, index)
        self.commands += ch.commands - before
        self.last_issue = ch.next - 1
        done = max(ch.next, ch.completion())
        self.frontier = max(self.frontier, done)
        self.add_busy(accept, done)

    def _repeat(self, body: list[list[int]], sig: list, reps: int) -> None:
        """``reps`` more runs of a REPEAT's body: run one at a time until two consecutive runs leave the channel in
        the same relative timing state (:meth:`_timing_state`); every further run then repeats the same shift, which
        is applied in closed form."""
        ch = self.chan
        prev = None
        for done in range(reps):
            c0, n0 = ch._counters(), ch.next
            ch.run_table(body, periodic=self.periodic, sig=sig if self.periodic else None)
            st = self._timing_state()
            left = reps - done - 1
            if st == prev and left:
                ch._shift(ch.next - n0, left, c0, ch._counters())
                return
            prev = st

    def _timing_state(self) -> tuple:
        """The channel engine's relative state without the banks' opening times, which only count their active
        cycles (statistics the system engine does not report): a body that keeps a row open repeats in time."""
        return self.chan._relative_state()[:-1]

    def rows(self, lo: int, hi: int) -> list[list[int]]:
        """Commands ``lo .. hi - 1`` as ``[op, all_banks, bank, row, col, count]`` rows (decoded per run, so that a
        jumped epoch's are never decoded)."""
        w = self.s.words[lo:hi]
        return np.stack([((w >> np.uint64(o)) & np.uint64((1 << n) - 1)).astype(np.int64) for o, n in _ROW_FIELDS],
                        axis=1).tolist()

    def _base(self) -> int:
        return self.last_issue

    def _unit_state(self, ref: int) -> tuple:
        # the channel engine's own relative state (the one its block repetition compares) and where it stands
        return (self.chan._relative_state(), self.chan.next * self.P - ref)

    def begin_epoch(self) -> None:
        super().begin_epoch()
        self.epoch_counters = self.chan._counters()

    def _unit_jump(self, reps: int, d: int, tail: Any) -> None:
        ch = self.chan
        ch._shift(d, reps, self.epoch_counters, ch._counters())
        self.last_issue += reps * d
        # rows differ between epochs: the open rows are the last skipped epoch's (``tail``: its PIM rows)
        for op, ab, bank, row in tail:
            if op == PimOp.ACT:
                for b in (range(ch.pim.banks) if ab else (bank,)):
                    ch.row[b] = row


class _SerialRunner(_Runner):
    """A unit that takes one command at a time: each takes ``cost`` cycles; ``latency`` more until it completes
    (the link: ``cost`` = beats sent, ``latency`` = the link's)."""

    def __init__(self, stream: Stream, items: list, ticks: int, kind: str, cost: np.ndarray, latency: int) -> None:
        super().__init__(stream, items, ticks)
        self.kind = kind
        self.cum = np.concatenate([[0], np.cumsum(cost)]).tolist()
        self.latency = latency
        self.free = 0            # cycle in which the unit takes its next command

    def run(self, lo: int, hi: int, reps: int = 0) -> None:
        start = max(self.offer, self.free)
        self.started(start)
        n = max(1, reps)
        work = (self.cum[hi] - self.cum[lo]) * n
        self.free = start + work
        self.commands += (hi - lo) * n
        self.frontier = max(self.frontier, self.free + self.latency)
        self.add_busy(start, self.free)

    def _base(self) -> int:
        return self.free

    def _unit_state(self, ref: int) -> tuple:
        return (self.free * self.P - ref,)

    def _unit_jump(self, reps: int, d: int, tail: Any) -> None:
        self.free += reps * d


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


class _Epochs:
    """Epochs of a program and which of them are identical, for the engine's epoch jump.

    An epoch starts at a ``MARK`` of an operator whose ``kind`` is ``"layer"`` in ``Program.operators`` (the mapper
    puts one at every layer's start and before the epilogue, in every stream). Jumping needs every stream (every
    representative of equal channel streams) to hold the same boundary marks in the same order. Epoch ``e`` of a
    stream is its items from boundary ``e`` up to boundary ``e + 1`` (the last: to the stream's end); two epochs are
    identical when every stream's words are equal in them apart from the fields that cannot change timing
    (:func:`timing_signature`: PIM rows, ...), MARK ids and which of a group of equal channel streams a WAIT names
    (:meth:`content`; the occurrence counts of SIGNAL/WAIT are not in the words).
    """

    def __init__(self, program: Program, runners: dict[int, _Runner], rep: list[int]) -> None:
        ops = program.operators
        layer = {k for k, v in ops.items() if isinstance(v, dict) and v.get("kind") == "layer"}
        self.runners, self.rep, self.program = runners, rep, program
        self.pos: dict[int, list[int]] = {}
        self.words: dict[int, list[int]] = {}   # the word each epoch starts at, and the stream's length
        seq = None
        self.ok = bool(layer)
        layer_ids = np.array(sorted(layer), dtype=np.int64)
        for i, r in runners.items():
            items, word = item_table(r.s)
            found = np.nonzero((items[:, 0] == MARK) & np.isin(items[:, 1], layer_ids))[0]
            ids = items[found, 1].tolist()
            if seq is None:
                seq = ids
            self.ok &= ids == seq
            self.pos[i] = found.tolist() + [len(r.items)]
            self.words[i] = word[found].tolist() + [len(r.s.words)]
        self.count = len(seq or [])
        self.ok &= self.count >= 3
        self._sig: dict[tuple[int, int], tuple] = {}
        self._canonical: dict[int, np.ndarray] = {}
        if self.ok:   # how many WAITs each stream makes on each event: whose waits are still to come
            self.total_waits = {i: {} for i in runners}
            rep_of = np.array(rep, dtype=np.int64)
            for i, r in runners.items():
                items = item_table(r.s)[0]
                w = items[items[:, 0] == WAIT]
                keys, n = np.unique(np.stack([rep_of[w[:, 1]], w[:, 2]], axis=1), axis=0, return_counts=True)
                self.total_waits[i] = {(int(a), int(b)): int(c) for (a, b), c in zip(keys.tolist(), n.tolist())}

    def limit(self, i: int, seg: int) -> int:
        """Item index at which stream ``i`` pauses after segment ``seg`` (-1: before the first epoch)."""
        return self.pos[i][seg + 1] if seg + 1 < len(self.pos[i]) else len(self.runners[i].items)

    def signature(self, i: int, e: int) -> tuple:
        """Epoch ``e`` of stream ``i``: ``(active, signals per token, waits per event)``; active: it holds unit
        commands or SYNC events (not only MARKs)."""
        key = (i, e)
        if key not in self._sig:
            r = self.runners[i]
            sig: dict[int, int] = {}
            waits: dict[tuple[int, int], int] = {}
            active = False
            for kind, a, b, c in r.items[self.pos[i][e]:self.pos[i][e + 1]]:
                if kind == WAIT:
                    waits[(self.rep[a], b)] = waits.get((self.rep[a], b), 0) + 1
                elif kind == SIGNAL:
                    sig[a] = sig.get(a, 0) + 1
                active |= kind != MARK
            self._sig[key] = (active, sig, waits)
        return self._sig[key]

    def content(self, i: int, e: int) -> bytes:
        """Epoch ``e`` of stream ``i`` as the bytes of its words with what may differ between identical epochs made
        equal: PIM commands by their timing signature, WAITs naming their producer's representative, MARK ids 0
        (computed once per stream; an epoch is a slice)."""
        if i not in self._canonical:
            r = self.runners[i]
            words = (r.sig if r.kind == "pim" else r.s.words).copy()
            pos, op, _, prod, _, _ = sync_table(r.s)
            wait, mark = pos[op == SyncOp.WAIT], pos[op == SyncOp.MARK]
            words[wait] = (words[wait] & ~_SYNC_STREAM) | (np.array(self.rep, dtype=np.uint64)[prod[op == SyncOp.WAIT]]
                                                          << np.uint64(_SYNC_FIELDS["stream"][0]))
            words[mark] &= ~_SYNC_ID
            self._canonical[i] = words
        lo, hi = self.words[i][e], self.words[i][e + 1]
        return self._canonical[i][lo:hi].tobytes()

    def same(self, e: int, f: int) -> bool:
        return all(self.content(i, e) == self.content(i, f) for i in self.runners)

    def mark_ids(self, i: int, e: int) -> list[int]:
        return [it[1] for it in self.runners[i].items[self.pos[i][e]:self.pos[i][e + 1]] if it[0] == MARK]

    def pim_rows(self, i: int, e: int) -> list[tuple[int, int, int, int]]:
        """``(op, all_banks, bank, row)`` of the PIM commands of epoch ``e`` of stream ``i``."""
        r = self.runners[i]
        out = []
        for kind, a, b, _ in r.items[self.pos[i][e]:self.pos[i][e + 1]]:
            if kind == RUN:
                out += [tuple(x[:4]) for x in r.rows(a, b)]
        return out

    def state(self, seg: int, events: dict, produced: dict) -> tuple[int, tuple]:
        """The state at the end of segment ``seg``, relative to the latest frontier ``ref`` (ticks): every active
        stream's :meth:`_Runner.state`, the passive streams' absolutely, and the events still to be waited for."""
        rs = self.runners
        ref = max(r.frontier * r.P for r in rs.values())
        runners = tuple((i, r.state(ref) if self.signature(i, seg)[0] else r.state(0)) for i, r in rs.items())
        pend = []
        for key, n in sorted(produced.items()):
            k0, lags = self.pending_from(key, n)
            pend.append((key, tuple(events[(*key, k)] - ref for k in range(k0, n)), lags))
        return ref, (runners, tuple(pend))

    def pending_from(self, key: tuple[int, int], produced: int) -> tuple[int, tuple]:
        """The first event of ``key`` some stream still waits for, and how far behind each such stream is."""
        nxt = {i: r.next_k.get(key, 0) for i, r in self.runners.items()
               if r.next_k.get(key, 0) < self.total_waits[i].get(key, 0)}
        k0 = min(nxt.values(), default=produced)
        return k0, tuple(sorted((i, k - k0) for i, k in nxt.items()))


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
    jump:
        Jump over repeated epochs (layers): run the program epoch by epoch (:class:`_Epochs`); when two consecutive
        epochs are identical and the whole state at the end of the second is the state at the end of the first
        shifted by one time ``D`` (every stream's times, its unit's relative state, the events still to be waited
        for), every further identical epoch repeats the same shift (the engine is deterministic and
        shift-invariant), so they are applied in closed form: marks, busy intervals, commands, event times. A
        program whose dependencies cross epoch boundaries backwards runs without jumping.
    progress:
        Progress bar over the stream items run (:func:`accel.progress.progress_bar`: None shows it on a terminal
        after a second; items a jump skips count as run).
    """

    def __init__(self, device: DeviceConfig, dedup: bool = True, periodic: bool = True, jump: bool = True,
                 progress: bool | None = None) -> None:
        self.device = device
        self.dedup = dedup
        self.periodic = periodic
        self.jump = jump
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
        if s.kind == "net":
            net = dev.interconnect.link
            cost = _cost_per_command(s, Family.LINK, lambda f: transfer_beats(f["bytes"], net)
                                     if f["op"] == LinkOp.XFER else 1)
            return _SerialRunner(s, items, clocks.net, "net", cost, net.latency)
        cost = _cost_per_command(s, Family.ATTN, lambda f: array_cycles(
            f["op"], f["m"], f["k"], f["n"], f["dataflow"], f["count"], dev.attention))
        return _SerialRunner(s, items, clocks.array, "array", cost, 0)

    def _boundary(self, ep: _Epochs, seg: int, prev: tuple | None, events: dict,
                  produced: dict) -> tuple[int, tuple | None]:
        """Every stream has paused at the end of segment ``seg``: compare the state with the previous epoch's end
        and jump over the identical epochs that follow (:class:`_Epochs`). Returns the next segment to run and the
        state to compare the next boundary with."""
        ref, st = ep.state(seg, events, produced)
        if prev is not None and prev[0] == seg - 1 and prev[2] == st and ep.same(seg - 1, seg):
            delta = ref - prev[1]
            rs = ep.runners
            ok = delta > 0 and all(delta % r.P == 0 for i, r in rs.items() if ep.signature(i, seg)[0])
            reps = 0
            while ok and seg + 1 + reps < ep.count and ep.same(seg, seg + 1 + reps):
                reps += 1
            if reps:
                self._jump(ep, seg, reps, delta, events, produced)
                self.jumped += reps
                return seg + 1 + reps, None
        return seg + 1, (seg, ref, st)

    @staticmethod
    def _jump(ep: _Epochs, seg: int, reps: int, delta: int, events: dict, produced: dict) -> None:
        """Apply ``reps`` further repetitions of epoch ``seg``, each ``delta`` ticks after the one before."""
        first = {key: ep.pending_from(key, n)[0] for key, n in produced.items()}
        for i, r in ep.runners.items():
            active, _, waits = ep.signature(i, seg)
            ids = [ep.mark_ids(i, seg + j) for j in range(1, reps + 1)]
            r.jump(reps, delta // r.P if active else 0, ids, ep.pim_rows(i, seg + reps) if r.kind == "pim" else None)
            for key, n in waits.items():
                r.next_k[key] = r.next_k.get(key, 0) + reps * n
            r.at = ep.pos[i][seg + 1 + reps]
            if r.at >= len(r.items):   # the jump reached the stream's end
                r.close_mark()
        for key, n in list(produced.items()):   # events still to be waited for move with their epoch
            per = ep.signature(key[0], seg)[1].get(key[1], 0)
            for k in range(first[key], n):
                events[(*key, k + reps * per)] = events[(*key, k)] + reps * delta
            produced[key] = n + reps * per

    def _groups(self, program: Program) -> list[int]:
        """Representative stream of every stream (itself unless a PIM stream with an equal timing signature came
        first: :func:`timing_signature`)."""
        rep = list(range(len(program.streams)))
        if not self.dedup:
            return rep
        # streams equal apart from their channel fields first (cheap), then their timing signatures
        same: dict[tuple[int, bytes], int] = {}
        for i, s in enumerate(program.streams):
            if s.kind == "pim":
                rep[i] = same.setdefault((s.device_index, _channel_free(s)), i)
        seen: dict[tuple[int, bytes], int] = {}
        first = {}
        for i in sorted(set(same.values())):
            s = program.streams[i]
            sig = _signature(s, self.device)
            first[i] = seen.setdefault((s.device_index, sig.tobytes()), i)
        return [first.get(r, r) for r in rep]

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
        produced: dict[tuple[int, int], int] = {}
        waiting: dict[tuple[int, int, int], list[int]] = {}
        blocked: dict[int, tuple[int, int, int]] = {}
        ep = _Epochs(program, runners, rep) if self.jump else None
        epochs = ep is not None and ep.ok
        seg, prev = -1, None
        self.jumped = 0
        if epochs:
            for i, r in runners.items():
                r.limit = ep.limit(i, seg)
        todo = deque(runners)
        S = clocks.sync
        total = sum(len(r.items) for r in runners.values())
        with progress_bar(total, "system engine", "item", self.progress) as bar:
            while True:
                while todo:
                    i = todo.popleft()
                    r = runners[i]
                    items = r.items
                    at = r.at
                    while r.at < r.limit:
                        kind, a, b, c = items[r.at]
                        if kind == RUN:
                            r.run(a, b, c)
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
                            r.next_k[key[:2]] = c + 1
                        elif kind == SIGNAL:
                            key = (i, a, b)
                            events[key] = r.frontier * r.P
                            produced[(i, a)] = b + 1
                            for j in waiting.pop(key, ()):
                                del blocked[j]
                                todo.append(j)
                        else:  # MARK
                            r.mark(a)
                        r.at += 1
                    else:
                        if r.at >= len(items):
                            r.close_mark()
                    bar.update(r.at - at)
                if not epochs or seg + 1 >= ep.count:
                    break
                if blocked:   # a dependency reaches into a later epoch: run the rest without epochs
                    epochs = False
                    for i, r in runners.items():
                        r.limit, r.log = len(r.items), None
                    todo.extend(i for i, r in runners.items() if i not in blocked and r.at < len(r.items))
                    continue
                seg, prev = self._boundary(ep, seg, prev, events, produced)
                for i, r in runners.items():
                    r.limit = ep.limit(i, seg)
                    r.begin_epoch()
                bar.update(sum(r.at for r in runners.values()) - bar.n)   # a jump skips items
                todo.extend(i for i, r in runners.items() if r.at < len(r.items))
        if blocked:
            raise deadlock_message(program.names, {j: blocked[rep[j]] for j in range(len(rep)) if rep[j] in blocked})
        results = {i: r.result() for i, r in runners.items()}
        streams = {s.name: replace(results[rep[j]], name=s.name) for j, s in enumerate(program.streams)}
        ticks = max([r.end * clocks.of(r.kind) for r in streams.values()], default=0)
        return SystemResult(dev.name, -(-ticks // clocks.pim), ticks, float(clocks.tick_ns), streams,
                            {k: clocks.of(k) for k in UNIT_KINDS}, static_events(program, dev), self.jumped)


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

"""The PIM channel engine: executes command programs exactly and fast.

Each command is issued at its earliest legal cycle, computed in closed form from the timestamps of the commands that
constrain it (no Python work per idle cycle); a run-length command (``count`` > 1) is issued as a whole: element ``k``
at ``t0 + k * step``, because after the first element only the run's own rules bind
(:meth:`accel.interfaces.pim.ChannelRules.step`). The rules are the table of ``accel/interfaces/pim.py``: at
construction it is laid out (:class:`_Plan`, once per configuration) as one flat list of timestamps — per source of
rows, one per bank or bank group plus an all-bank and a latest-of-any-bank stamp (so all-bank commands cost O(1)), or
one per channel — and, per op, all-bank flag and bank, the stamps and latencies that command reads and the stamps it
writes. The schedule is the one the per-cycle model (``emulator/units/pim.py``, the RTL's twin) produces in wait mode
with an always-valid command stream; tests prove them equal on random programs. Numerics (functional mode) are
vectorised over columns and banks with numpy and equal the per-cycle model bit for bit.

Cycle 0 is the cycle the first command word is offered: as in the hardware, a command issues at the earliest in the
cycle after it reaches the channel's head register, and at most one command element issues per cycle.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, NamedTuple

import numpy as np

from accel.config import BITSERIAL_DATATYPES, BitSerialConfig, DeviceConfig, PimConfig
from accel.errors import AccelError, caused_by
from accel.interfaces.pim import (
    ACC_BITS, BANK_TARGETS, CFR_FORMAT, CFR_REGISTERS, PIM_TIMING_RULES, RUN_OPS, ChannelRules, RuleTable, Source,
    PimIllegalError, PimTimingError, Row, TimingRule, acc_bits, beat_of, column_bytes, column_fields, column_word,
    compile_rules, describe, entry_datatype, entry_index, format_pace, illegal_message, mac_weights, pack_words,
    timing_message, timing_signature, unpack_entries,
)
from accel.isa import TABLES, Family, PimOp, check_device_fits
from accel.numerics import DATATYPES, wrap

from .units.pim import PimChannel, bank_unit, cfr_ok

__all__ = ["ChannelEngine", "DeviceEngine", "Issue", "RunStats", "PimProgram", "decode_program"]

_NEG = -(1 << 40)
_PIM = TABLES[Family.PIM]
_OPS = frozenset(int(o) for o in PimOp)
# op codes as ints, bound once for the inner loop
_ACT, _PRE, _RD, _WR, _WRGB, _MAC, _RDMAC, _CLRMAC, _REF, _CFR = (
    int(o) for o in (PimOp.ACT, PimOp.PRE, PimOp.RD, PimOp.WR, PimOp.WRGB, PimOp.MAC, PimOp.RDMAC, PimOp.CLRMAC,
                     PimOp.REF, PimOp.CFR))
_OP_CODES = 1 << _PIM.width("op")      # every value the op field can hold
_BANK_CODES = 1 << _PIM.width("bank")  # every value the bank field can hold
_RUN = [o in _OPS and PimOp(o) in RUN_OPS for o in range(_OP_CODES)]


class Issue(NamedTuple):
    """Where a command went: its op, first and last element's cycles, elements, and cycles between elements."""

    op: int
    first: int
    last: int
    count: int
    step: int


@dataclass
class RunStats:
    """Totals of a run: cycles, per-bank open-row cycles and MAC elements (columns), MACs done (``mac_lane_ops``:
    weights multiplied, metadata columns left out), commands and elements."""

    cycles: int
    bank_active_cycles: np.ndarray
    bank_mac_elements: np.ndarray
    mac_lane_ops: int
    commands: int
    elements: int
    read_words: list[tuple[int, int]] = field(default_factory=list)


class _Plan:
    """A compiled rule table laid out for the engine (shared by every engine of one configuration).

    Timestamps live in one flat list. A ``bank`` (``bg``) source has one slot per bank (group) for single-bank
    commands, one for all-bank commands and one holding the latest of them all (the answer for all-bank followers); a
    ``ch`` source has that latest slot only. Sources with the same preceding commands share their all-bank and latest
    slots (they hold the same cycles), unless a preceding command can act on no bank (a PRE of closed banks). A
    dynamic source's slots hold ready cycles (issue + the bank's MAC terms + its offset) instead of issue cycles.
    Window sources keep a deque of their last issues.

    ``query[op][ab][bank]``: ``(pairs, windows)`` — a command's first legal cycle is the largest ``stamp + latency``
    over its ``(slot, latency)`` pairs and ``(window, latency)`` windows' oldest stamps (None: no rule applies).
    ``update[op][ab][bank]``: ``(slots, dynamic, windows)`` — the slots an issue sets to its cycle, the dynamic
    sources ``(first bank slot, latest slot, banks, monotone, offset)`` it raises, the windows it appends to
    (``monotone``: every command that sets the source waits for it, so a new ready cycle is never below the old). A
    PRE is planned for open banks; the engine handles a PRE of closed banks apart.
    """

    def __init__(self, rules: ChannelRules) -> None:
        p = rules.pim
        self.rules = rules
        self.nb, self.ng, self.bpg = p.banks, p.bank_groups, p.banks_per_group
        self.inst: dict[int, list[int]] = {}     # source -> per bank (group) slots
        self.ab: dict[int, int] = {}             # source -> all-bank slot
        self.latest: dict[int, int] = {}         # source -> latest slot
        self.win: dict[int, int] = {}
        self.windows: list[int] = []
        shared: dict[frozenset, tuple[int, int]] = {}
        n = 0
        for s in rules.sources:
            if s.window > 1:
                self.win[s.index] = len(self.windows)
                self.windows.append(s.window)
                continue
            if s.level != "ch":
                k = self.nb if s.level == "bank" else self.ng
                self.inst[s.index] = list(range(n, n + k))
                n += k
            if s.dynamic or any(BANK_TARGETS[PimOp(o)] == "open" for o, _ in s.preceding):
                self.ab[s.index], self.latest[s.index] = n, n + 1
                n += 2
                continue
            if s.preceding not in shared:
                shared[s.preceding] = (n, n + 1)
                n += 2
            self.ab[s.index], self.latest[s.index] = shared[s.preceding]
        self.size = n
        self.steps: list[list[tuple[int, int | None]]] = [[(1, None), (1, None)] for _ in range(_OP_CODES)]
        self.query: list[list[list[Any]]] = [[[None] * _BANK_CODES for _ in (0, 1)] for _ in range(_OP_CODES)]
        self.update: list[list[list[Any]]] = [[[None] * _BANK_CODES for _ in (0, 1)] for _ in range(_OP_CODES)]
        for op in PimOp:
            o = int(op)
            for ab in (0, 1):
                self.steps[o][ab] = (rules.step(o, ab), rules.dynamic_step(o, ab))
                cache: dict[tuple, tuple] = {}
                for b in range(_BANK_CODES):
                    banks = self.banks_of(op, ab, b)
                    if banks is None:
                        continue   # bank out of range: illegal, never planned
                    if banks not in cache:
                        cache[banks] = (self._query(o, ab, banks), self._update(o, ab, banks))
                    self.query[o][ab][b], self.update[o][ab][b] = cache[banks]

    def banks_of(self, op: PimOp, ab: int, b: int) -> tuple[int, ...] | None:
        """The banks a command acts on for timing, all of them open (None: its bank is out of range)."""
        kind = BANK_TARGETS[op]
        if kind == "none":
            return ()
        if kind == "all" or (ab and kind in ("addressed", "open")):
            return tuple(range(self.nb))
        return (b,) if b < self.nb else None

    def instances(self, s: Source, banks: Iterable[int]) -> list[int]:
        """The per-bank (group) slots of a bank (bg) source for ``banks``."""
        inst = self.inst[s.index]
        return [inst[i] for i in (banks if s.level == "bank" else sorted({b // self.bpg for b in banks}))]

    def _query(self, op: int, ab: int, banks: tuple[int, ...]) -> tuple | None:
        every = len(banks) == self.nb and self.nb > 1
        lat: dict[int, int] = {}
        wins = []
        for r in self.rules.rows_for[(op, ab)]:
            s = r.source
            n = r.latency if r.latency is not None else 0
            if s.window > 1:
                wins.append((self.win[s.index], n))
                continue
            if s.level == "ch" or every:
                slots = [self.latest[s.index]]
            else:
                slots = self.instances(s, banks) + ([] if s.dynamic else [self.ab[s.index]])
            for i in slots:
                lat[i] = max(lat.get(i, _NEG), n)
        if not lat and not wins:
            return None
        return tuple(sorted(lat.items())), tuple(wins)

    def _update(self, op: int, ab: int, banks: tuple[int, ...]) -> tuple:
        every = len(banks) == self.nb and self.nb > 1
        slots, dyn, wins = set(), [], []
        for s in self.rules.sources_for[(op, ab)]:
            if s.window > 1:
                wins.append(self.win[s.index])
            elif s.dynamic:
                own = all(any(f in r.following for r in self.rules.rows if r.source is s) for f in s.preceding)
                dyn.append((self.inst[s.index][0], self.latest[s.index], banks, own, s.offset))
            elif s.level == "ch":
                slots.add(self.latest[s.index])
            elif banks:
                slots |= {self.ab[s.index]} if every else set(self.instances(s, banks))
                slots.add(self.latest[s.index])
        return tuple(sorted(slots)), tuple(dyn), tuple(wins)


@lru_cache(maxsize=64)
def _plan(rules: ChannelRules) -> _Plan:
    return _Plan(rules)


def _wrap(v: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement wrap to ``bits`` (elementwise, int64)."""
    half = 1 << (bits - 1)
    return ((v + half) & ((1 << bits) - 1)) - half


class ChannelEngine:
    """One channel, executed command by command at the earliest legal cycles.

    Parameters
    ----------
    pim, bitserial:
        The channel's configuration (``bitserial`` needed for ``lane="bitserial"``: its datatypes set the MAC pace
        and the numerics).
    functional:
        Keep data and compute MAC results (False: timing only, faster).
    record_reads:
        Keep ``(cycle, word)`` of every read beat (RD columns, RDMAC registers) in :attr:`reads`.
    rules:
        The timing-rule table (default: the channel's, :data:`~accel.interfaces.pim.PIM_TIMING_RULES`).
    """

    def __init__(self, pim: PimConfig, bitserial: BitSerialConfig | None = None, functional: bool = True,
                 record_reads: bool = True, rules: Iterable[TimingRule] = PIM_TIMING_RULES) -> None:
        if pim.lane == "bitserial" and bitserial is None:
            raise AccelError("a channel with lane = 'bitserial' needs the device's BitSerialConfig (its datatypes "
                             "set the MAC pace and the numerics): pass bitserial=device.bitserial")
        self.pim = pim
        self.unit = bank_unit(pim, bitserial)
        self.rules = compile_rules(self.unit, rules)
        self._plan = _plan(self.rules)
        self._query, self._update, self._steps = self._plan.query, self._plan.update, self._plan.steps
        self._nb = pim.banks
        self._rd_latency, self._rdmac_latency = pim.timing.rd_latency, pim.timing.rdmac_latency
        self.functional = functional
        self.record_reads = record_reads and functional
        # the per-cycle model's storage, numerics and legality checks are reused (never its timing); a timing-only
        # engine builds it only when it needs to name the reason of an illegal command
        self._bitserial = bitserial
        self._model_obj: PimChannel | None = None
        self._data = self._model if functional else None
        self._pace = format_pace(self.unit)
        self._mw: dict[tuple[int, int, int], int] = {}   # (format, col, count) -> weights a bank multiplies
        u = self.unit
        self._n_entries = (u.max_metadata_columns * pim.column_bits // u.entry_bits) if u.bitserial else 0
        self._meta_cols = {f: self.unit.metadata_columns(f) if self.unit.bitserial else 0 for f in self.unit.formats}
        if functional and self.unit.bitserial is not None:
            self._tables()
        self.reset()

    @property
    def _model(self) -> PimChannel:
        if self._model_obj is None:
            self._model_obj = PimChannel(self.pim, self._bitserial, rules=self.rules.rules)
        return self._model_obj

    def _tables(self) -> None:
        """Lookup tables of the bit-serial numerics: value of (datatype code, raw field) with the field cut to the
        datatype's code bits; the datatype a unit decodes for an entry's code, per format."""
        u = self.unit
        n = 1 << max(u.formats)
        self._values = np.zeros((len(BITSERIAL_DATATYPES), n), dtype=np.int64)
        for name, code in u.bitserial.dtype_codes.items():
            dt = DATATYPES[name]
            vals = np.asarray(dt.values, dtype=np.int64)
            self._values[code] = vals[np.arange(n) & ((1 << dt.code_bits) - 1)]
        self._decode = {f: np.array([entry_datatype(u, f, c) for c in range(1 << u.bitserial.dtype_bits)])
                        for f in u.formats}

    def reset(self) -> None:
        p = self.pim
        nb = p.banks
        # timestamps of the rule sources (see _Plan) and the windows' last issues
        self.T = [_NEG] * self._plan.size
        self._win = [deque(maxlen=w) for w in self._plan.windows]
        self.open = [False] * nb
        self.n_open = 0
        self.row = [0] * nb
        self.open_since = [0] * nb
        self.active_cycles = [0] * nb
        self.mac_elements = [0] * nb
        self.ab_mac_elements = 0
        # a bank's MAC unit is busy for its format's pace per column
        self.fmt = [self.unit.reset_format] * nb
        self._fmt_uniform = True
        self.terms = [self._pace[self.fmt[0]]] * nb
        self.terms_max = self.terms[0]
        self.mac_weights = 0
        # functional numerics: per bank the metadata register, per unit its latched entry, its own beat count and
        # partial sum within a group, and its accumulator (the per-cycle model's state, applied at the MAC's issue:
        # the MAC_DRAIN rule keeps RDMAC and CLRMAC until every result is in)
        units = max(1, self.unit.units)
        self._meta = np.zeros((nb, self.unit.max_metadata_columns * p.column_bytes if self.unit.bitserial else 0),
                              dtype=np.uint8)
        self._entries = np.zeros((nb, self._n_entries + 1, 2), dtype=np.int64)  # parsed; the last reads as zeros
        self._entry = np.zeros((nb, units, 2), dtype=np.int64)
        self._cnt = np.zeros((nb, units), dtype=np.int64)
        self._psum = np.zeros((nb, units), dtype=np.int64)
        self._acc = np.zeros((nb, self.unit.mac_registers), dtype=np.int64)
        self.next = 1               # earliest cycle of the next command (head register latency)
        self.last_data = -1
        self.commands = 0
        self.elements = 0
        self.reads: list[tuple[int, int]] = []
        self._stats_key = id(self)
        if self._model_obj is not None:
            self._model_obj.reset()

    # ---------------------------------------------------------------------------------------------------------------
    def _timing_banks(self, op: int, ab: int, bank: int) -> list[int]:
        """The banks a command acts on for the timing rules, now (``BANK_TARGETS``: a PRE only its open banks)."""
        kind = BANK_TARGETS[PimOp(op)]
        if kind == "none":
            return []
        if kind == "all":
            return list(range(self.pim.banks))
        if kind == "bank":
            return [bank]
        banks = list(range(self.pim.banks)) if ab else [bank]
        return [b for b in banks if self.open[b]] if kind == "open" else banks

    def row_readies(self, op: PimOp | int, all_banks: int, bank: int) -> list[tuple[Row, int, int | None]]:
        """``(row, first legal cycle, bank)`` of every table row that constrains the first element of a command now
        (bank: the bank that decides a bank-level row, the lowest on ties; None for other levels). A read-only probe:
        :meth:`constraints` and :meth:`issue` use it to name the rule; the inner loop uses the plan."""
        op = int(op)
        plan, T = self._plan, self.T
        banks = self._timing_banks(op, all_banks, bank)
        groups = sorted({b // plan.bpg for b in banks})
        out: list[tuple[Row, int, int | None]] = []
        for r in self.rules.rows_for[(op, all_banks)]:
            s = r.source
            n = r.latency if r.latency is not None else 0
            if s.window > 1:
                d = self._win[plan.win[s.index]]
                if len(d) == d.maxlen:
                    out.append((r, d[0] + n, None))
                continue
            if s.level == "ch":
                v = T[plan.latest[s.index]]
                if v > _NEG:
                    out.append((r, v + n, None))
                continue
            inst = plan.inst[s.index]
            ab_t = T[plan.ab[s.index]]
            best, where = _NEG, None
            for i in (banks if s.level == "bank" else groups):
                v = T[inst[i]] if T[inst[i]] > ab_t else ab_t
                if v > best:
                    best, where = v, i
            if where is not None:
                out.append((r, best + n, where if s.level == "bank" else None))
        return out

    def constraints(self, op: PimOp | int, all_banks: int, bank: int) -> list[tuple[Any, int, int | None, Row]]:
        """``(rule, first legal cycle, bank, binding row)`` of every timing rule on the first element of a command,
        in code order (per rule its latest row)."""
        return self.rules.worst(self.row_readies(op, all_banks, bank))

    def _earliest(self, op: int, ab: int, b: int, r: int = _NEG) -> int:
        """The first cycle all timing rules allow, and at least ``r`` (the plan's fast form of :meth:`row_readies`)."""
        if op == _PRE and not (self.n_open == self._nb if ab else self.open[b]):
            # a PRE of closed banks does nothing to them: only the banks it closes count
            return max([r] + [c[1] for c in self.row_readies(op, ab, b)])
        e = self._query[op][ab][b]
        if e is None:
            return r
        T = self.T
        for i, n in e[0]:
            v = T[i] + n
            if v > r:
                r = v
        if e[1]:
            for w, n in e[1]:
                d = self._win[w]
                if len(d) == d.maxlen and d[0] + n > r:
                    r = d[0] + n
        return r

    def _legal(self, op: int, ab: int, b: int, row: int, col: int, count: int) -> bool:
        """Fast legality test; the per-cycle model's rules name the reason when this says no."""
        p = self.pim
        if op not in _OPS:
            return False
        if op == _RD or op == _WR or op == _MAC:
            if ab:
                return op != _RD and self.n_open == p.banks and col + count <= p.columns
            return b < p.banks and self.open[b] and col + count <= p.columns
        if op == _ACT:
            if row >= p.rows:
                return False
            return self.n_open == 0 if ab else (b < p.banks and not self.open[b])
        if op == _PRE or op == _CLRMAC:
            return bool(ab) or b < p.banks
        if op == _WRGB:
            return col + count <= p.gb_columns
        if op == _RDMAC:
            return b + count <= p.banks
        if op == _REF:
            return self.n_open == 0
        if op == _CFR:
            return (bool(ab) or b < p.banks) and col in CFR_REGISTERS and cfr_ok(self.unit, col, row)
        return True  # NOP

    def _illegal(self, op: int, f: dict[str, int]) -> tuple[Any, int | None]:
        # the legality rules are the per-cycle model's; its banks mirror the engine's open rows
        m = self._model
        for b, bk in enumerate(m.banks):
            bk.open = self.open[b]
        return m._illegal({"family": int(Family.PIM), "op": op, **f})

    # ---------------------------------------------------------------------------------------------------------------
    def issue(self, op: PimOp | int, all_banks: int = 0, bank: int = 0, row: int = 0, col: int = 0, count: int = 0,
              data: Any = None, at: int | None = None) -> Issue:
        """Issue one command (run-length form allowed) at its earliest legal cycle, or check it at cycle ``at``.

        ``data``: for WR/WRGB, ``count`` column words (ints) or an array of ``count`` x ``column_bits / 8`` bytes.
        Raises :class:`~accel.interfaces.pim.PimIllegalError` for illegal commands and, with ``at``,
        :class:`~accel.interfaces.pim.PimTimingError` if a rule is not met at ``at`` (naming the rule, the bank and
        the cycles missing).
        """
        op_i = int(op)
        count = count if count > 0 else 1
        if op_i == _RDMAC and all_banks:
            all_banks, bank, count = 0, 0, self.pim.banks
        f = {"all_banks": int(all_banks), "channel": 0, "bank": int(bank), "row": int(row), "col": int(col),
             "count": count}
        if not self._legal(op_i, all_banks, bank, row, col, count):
            now = self.next if at is None else at
            rule, rb = self._illegal(op_i, f)
            if not rule:  # pragma: no cover - the fast and detailed legality rules disagree
                raise AssertionError(f"engine legality disagrees with the model on {f}")
            name = describe(PimOp(op_i), f) if op_i in _OPS else f"op {op_i}"
            raise PimIllegalError(f"{name} at cycle {now}: {illegal_message(rule, rb, self.pim)}", rule, rb, now)
        if at is None:
            t0 = self._earliest(op_i, all_banks, bank, self.next)
        else:
            if at < self.next:
                raise AccelError(f"{describe(PimOp(op_i), f)}: cycle {at} is before the channel can take a command "
                                 f"(cycle {self.next}: one command element per cycle, after the previous one)")
            for rule, ready, b, r in self.constraints(op_i, all_banks, bank):
                if ready > at:
                    raise PimTimingError(timing_message(PimOp(op_i), f, rule, r.rule, ready - at, b, at), rule,
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
        """Cycles between a run's elements: the run's own rules, and for bit-serial MACs the banks' terms."""
        step, dynamic = self._steps[op][ab]
        if dynamic is not None:
            n = (self.terms_max if ab else self.terms[bank]) + dynamic
            if n > step:
                step = n
        return step

    # ---------------------------------------------------------------------------------------------------------------
    def _stamp(self, entry: tuple, when: int) -> None:
        """Record an issue at ``when`` in the rule sources of an update entry of the plan."""
        T = self.T
        slots, dyn, wins = entry
        for i in slots:
            T[i] = when
        for base, latest, banks, monotone, offset in dyn:
            terms = self.terms
            at = when + offset
            if monotone and len(banks) == len(terms):
                T[base:base + len(terms)] = [at + n for n in terms]
                v = at + self.terms_max
            else:
                v = _NEG
                for b in banks:
                    x = at + terms[b]
                    if x > T[base + b] or monotone:
                        T[base + b] = x
                    if x > v:
                        v = x
            if v > T[latest]:
                T[latest] = v
        for w in wins:
            self._win[w].append(when)

    def _apply(self, op: int, ab: int, bank: int, row: int, col: int, t0: int, last: int, step: int, count: int,
               data: Any) -> None:
        p = self.pim
        d = self._data
        # a run counts from its last element; other commands are single elements (their count is not a run)
        when = last if count == 1 or _RUN[op] else t0
        if op == _PRE:
            if self.n_open == p.banks if ab else self.open[bank]:
                closing = range(p.banks) if ab else (bank,)
                e = self._update[op][ab][bank]
                if e[1] or e[2]:
                    self._stamp(e, when)
                else:
                    T = self.T
                    for i in e[0]:
                        T[i] = when
            else:   # only the open banks it addresses
                closing = tuple(b for b in (range(p.banks) if ab else (bank,)) if self.open[b])
                self._stamp(self._plan._update(op, ab, closing), when)
            for b in closing:
                self.open[b] = False
                self.active_cycles[b] += t0 - self.open_since[b]
                if d is not None:
                    d.banks[b].open = False
            self.n_open -= len(closing)
            return
        slots, dyn, wins = self._update[op][ab][bank]
        T = self.T
        for i in slots:
            T[i] = when
        if dyn:
            if ab and len(dyn) == 1 and dyn[0][3]:   # the bit-serial all-bank MAC
                base, latest, _, _, offset = dyn[0]
                at = when + offset
                T[base:base + p.banks] = [at + n for n in self.terms]
                if at + self.terms_max > T[latest]:
                    T[latest] = at + self.terms_max
            else:
                self._stamp(((), dyn, ()), when)
        if wins:
            for w in wins:
                self._win[w].append(when)
        if op == _MAC:
            if ab:
                self.ab_mac_elements += count
            else:
                self.mac_elements[bank] += count
            mw = self._mw
            if ab and self._fmt_uniform:
                key = (self.fmt[0], col, count)
                if key not in mw:
                    mw[key] = mac_weights(self.unit, *key)
                self.mac_weights += p.banks * mw[key]
            else:
                for b in (range(p.banks) if ab else (bank,)):
                    key = (self.fmt[b], col, count)
                    if key not in mw:
                        mw[key] = mac_weights(self.unit, *key)
                    self.mac_weights += mw[key]
            if d is not None:
                self._mac(d, list(range(p.banks)) if ab else [bank], col, count)
        elif op == _ACT:
            targets = range(p.banks) if ab else (bank,)
            for b in targets:
                self.open[b] = True
                self.row[b] = row
                self.open_since[b] = t0
                if d is not None:
                    d.banks[b].open, d.banks[b].row = True, row
            self.n_open += len(targets)
        elif op == _RD:
            lat = self._rd_latency
            self.last_data = max(self.last_data, last + lat)
            if self.record_reads:
                rows = d.banks[bank].row_data(self.row[bank])
                for k in range(count):
                    self.reads.append((t0 + k * step + lat, column_word(rows[col + k])))
        elif op == _WR:
            if d is not None:
                cols = self._columns(data, count)
                for b in (range(p.banks) if ab else (bank,)):
                    d.banks[b].row_data(self.row[b])[col:col + count] = cols
        elif op == _WRGB:
            if d is not None:
                d.gb[col:col + count] = self._columns(data, count)
        elif op == _RDMAC:
            lat = self._rdmac_latency
            self.last_data = max(self.last_data, last + lat)
            if self.record_reads:
                for k in range(count):
                    self.reads.append((t0 + k * step + lat, pack_words(self._acc[bank + k].tolist(), ACC_BITS)))
        elif op == _CLRMAC:
            for b in (range(p.banks) if ab else (bank,)):
                self._acc[b] = 0
        elif op == _CFR:  # the format sets the MAC pace and how the columns are read
            if col == CFR_FORMAT:
                for b in (range(p.banks) if ab else (bank,)):
                    self.fmt[b] = row
                    self.terms[b] = self._pace[row]
                self.terms_max = max(self.terms)
                self._fmt_uniform = len(set(self.fmt)) == 1

    def _columns(self, data: Any, count: int) -> np.ndarray:
        p = self.pim
        if data is None:
            raise AccelError(f"WR/WRGB of {count} column(s) needs {count} data word(s); pass data=")
        if isinstance(data, np.ndarray) and data.ndim == 2:
            arr = data.astype(np.uint8)
        else:
            arr = np.stack([column_bytes(int(w) & ((1 << p.column_bits) - 1), p) for w in data])
        if arr.shape != (count, p.column_bytes):
            raise AccelError(f"WR/WRGB of {count} column(s) got data of shape {arr.shape}; expected "
                             f"({count}, {p.column_bytes}) bytes or {count} words")
        return arr

    def _mac(self, d: PimChannel, banks: list[int], col: int, count: int) -> None:
        """A MAC run on ``banks``: metadata columns load the metadata registers, data columns are vectorised over
        banks (of one format and unit state) and beats (the same numerics as the per-cycle model's bit-serial units
        or int8 lanes)."""
        groups: dict[tuple, list[int]] = {}
        for b in banks:
            groups.setdefault((self.fmt[b], *self._cnt[b].tolist()), []).append(b)
        for (f, *_), bs_ in groups.items():
            self._mac_banks(d, bs_, f, col, count)

    def _mac_banks(self, d: PimChannel, banks: list[int], f: int, col: int, count: int) -> None:
        u, p = self.unit, self.pim
        meta = self._meta_cols[f]
        rows = [d.banks[b].row_data(self.row[b]) for b in banks]
        bi = np.asarray(banks)
        if col < meta:
            cb = p.column_bytes
            for c in range(col, min(col + count, meta)):
                self._meta[bi, c * cb:(c + 1) * cb] = np.stack([r[c] for r in rows])
            self._entries[bi, :-1] = unpack_entries(u, self._meta[bi])
        c0 = max(col, meta)
        if c0 >= col + count:
            return
        cols = np.arange(c0, col + count)
        codes = column_fields(np.stack([r[c0:col + count] for r in rows]), f)        # banks x columns x codes
        r_ = u.gb_columns_per_mac(f)
        gidx = (cols[:, None] * r_ + np.arange(r_)[None, :]) % p.gb_columns
        acts = d.gb[gidx].reshape(len(cols), -1).astype(np.int64)
        acts = acts - ((acts & 0x80) << 1)                                            # columns x codes, signed
        if u.bitserial is None:
            w = codes - ((codes & 0x80) << 1)
            lanes = p.mac_lanes
            add = (w * acts[None]).reshape(len(banks), -1, lanes).sum(axis=1)
            self._acc[bi] = _wrap(self._acc[bi] + add, ACC_BITS)
            return
        bs = u.bitserial
        n, na, lanes, bpg, bits = u.unit_beats(f), u.active_units(f), u.unit_lanes, bs.beats_per_group, bs.acc_bits
        beats = np.arange(n)
        bc, bm = np.repeat(cols, n), np.tile(beats, len(cols))                       # each beat's column and index
        nb_ = len(bc)
        for k in range(na):
            j = beat_of(u, f, k, beats)                                               # the unit's slots of a column
            sel = (j[:, None] * lanes + np.arange(lanes)[None, :]).reshape(-1)
            cw = codes[:, :, sel].reshape(len(banks), nb_, lanes)                      # banks x beats x lanes
            aw = acts[:, sel].reshape(nb_, lanes)
            starts, index = entry_index(u, f, bc, bm, k)
            # each beat carries the entry latched at the latest group start (or the one latched before the run)
            at = np.flatnonzero(starts)
            idx = np.minimum(index[at], self._n_entries)
            table = np.concatenate([self._entry[bi, k][:, None], self._entries[bi[:, None], idx[None, :]]], axis=1)
            which = np.zeros(nb_, dtype=np.int64)
            which[at] = np.arange(1, len(at) + 1)
            which = np.maximum.accumulate(which)
            ecode, escale = table[:, which, 0], table[:, which, 1]                     # banks x beats
            self._entry[bi, k] = table[:, -1]
            dtype = self._decode[f][ecode]
            contrib = (self._values[dtype[..., None], cw] * aw[None]).sum(axis=2)     # banks x beats
            # the unit's own groups: it dequantises after every beats_per_group beats, with its last beat's scale
            q = int(self._cnt[bi[0], k]) + np.arange(nb_)
            ends = np.flatnonzero((q + 1) % bpg == 0)
            cs = np.cumsum(contrib, axis=1)
            carry = self._psum[bi, k]
            if len(ends):
                before = np.concatenate([np.zeros((len(banks), 1), np.int64), cs[:, ends[:-1]]], axis=1)
                gsum = cs[:, ends] - before
                gsum[:, 0] += carry
                res = _wrap(_wrap(gsum, bits) * escale[:, ends], bits)
                self._acc[bi, k] = _wrap(self._acc[bi, k] + res.sum(axis=1), bits)
                self._psum[bi, k] = _wrap(cs[:, -1] - cs[:, ends[-1]], bits)
            else:
                self._psum[bi, k] = _wrap(carry + cs[:, -1], bits)
            self._cnt[bi, k] = (q[-1] + 1) % bpg


    # ---------------------------------------------------------------------------------------------------------------
    def _relative_state(self) -> tuple:
        """Everything that decides future timing, relative to ``next``; stamps older than any rule's reach are
        equivalent, so they are clamped."""
        now = self.next
        h = self.rules.horizon
        lo = now - h
        stamps = self.T + [self.last_data] + [v for w in self._win for v in w]
        return ([v - now if v > lo else -h for v in stamps], [len(w) for w in self._win], list(self.open),
                self.n_open, list(self.fmt),
                # an open bank's opening time decides its active-cycle count: only shift-invariant if it moves too
                [v - now for v, o in zip(self.open_since, self.open) if o])

    def _counters(self) -> tuple:
        return (list(self.active_cycles), list(self.mac_elements), self.ab_mac_elements, self.commands,
                self.elements, self.mac_weights)

    def _shift(self, delta: int, reps: int, c0: tuple, c1: tuple) -> None:
        """Advance the whole state by ``reps`` periods of ``delta`` cycles (counters grow by the period's change)."""
        d = delta * reps
        self.T = [v + d for v in self.T]
        self._win = [deque((v + d for v in w), maxlen=w.maxlen) for w in self._win]
        self.open_since = [v + d for v in self.open_since]
        self.last_data += d
        self.next += d
        self.active_cycles = [a + reps * (b - a0) for a, a0, b in zip(self.active_cycles, c0[0], c1[0])]
        self.mac_elements = [a + reps * (b - a0) for a, a0, b in zip(self.mac_elements, c0[1], c1[1])]
        self.ab_mac_elements += reps * (c1[2] - c0[2])
        self.commands += reps * (c1[3] - c0[3])
        self.elements += reps * (c1[4] - c0[4])
        self.mac_weights += reps * (c1[5] - c0[5])

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
                sig = self.block_signature(np.asarray(table, dtype=np.int64).reshape(-1, 6).T).tolist()
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

    def block_signature(self, cols: Any) -> np.ndarray:
        """What of each command ``op, all_banks, bank, row, col, count`` (arrays) decides its timing and counts, as
        one int: rows and columns do not change a schedule, except a CFR's (its register and value: a bank's format
        sets its MAC pace) and whether a MAC starts on a metadata column (the weights it multiplies)."""
        op, ab, bank, row, col, count = (np.asarray(c, dtype=np.int64) for c in cols)
        meta = self.unit.max_metadata_columns if self.unit.bitserial is not None else 0
        cfr = op == _CFR
        col = np.where(cfr, col, np.where(op == _MAC, np.minimum(col, meta), 0))
        return (op | (ab << 4) | (bank << 5) | (col << 12) | (count << 24) | (np.where(cfr, row, 0) << 40))

    def _issue_lean(self, op: int, ab: int, bank: int, row: int, col: int, count: int, data: Any) -> None:
        """:meth:`issue` at the earliest cycle, without building its result (the engine's inner loop)."""
        if count < 1:
            count = 1
        if op == _RDMAC and ab:
            ab, bank, count = 0, 0, self.pim.banks
        if not self._legal(op, ab, bank, row, col, count):
            self.issue(op, ab, bank, row, col, count, data)  # raises with the reason
        t0 = self._earliest(op, ab, bank, self.next)
        step, dynamic = self._steps[op][ab]   # _step, inlined
        if dynamic is not None:
            n = (self.terms_max if ab else self.terms[bank]) + dynamic
            if n > step:
                step = n
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
                    if r[0] == _ACT:
                        for b in (range(self.pim.banks) if r[1] else (r[2],)):
                            self.row[b] = r[3]
                return i + reps * p
            prev_state, prev_next, prev_counters = state, self.next, counters
        return i + reps * p

    def load_row(self, bank: int, row: int, data: np.ndarray) -> None:
        """Host preload of a DRAM row (not timed): ``columns`` x ``column_bits / 8`` bytes."""
        self._data.banks[bank].row_data(row)[:] = np.asarray(data, dtype=np.uint8)

    def mac_registers(self) -> np.ndarray:
        """Every bank's MAC register now (banks x ``mac_registers`` accumulators, signed)."""
        return np.array(self._acc, dtype=np.int64)

    @property
    def cycles(self) -> int:
        """Cycles until the last element issued and the last read data left."""
        return max(self.next, self.last_data + 1)

    # ---- hook of the system engine (emulator/system.py) ----------------------------------------------------------
    def completion(self) -> int:
        """First cycle by which the data of every read issued so far has left the pins and every bit-serial MAC's
        lanes are free (the system engine adds the cycle after the last issue)."""
        plan, T = self._plan, self.T
        ready = max((T[plan.latest[s.index]] for s in plan.rules.sources if s.dynamic and s.index in plan.latest),
                    default=_NEG)
        return max(self.last_data + 1, ready)

    def stats(self) -> RunStats:
        end = self.cycles
        active = np.array([a + ((end - s) if o else 0) for a, s, o in
                           zip(self.active_cycles, self.open_since, self.open)], dtype=np.int64)
        macs = np.array(self.mac_elements, dtype=np.int64) + self.ab_mac_elements
        return RunStats(end, active, macs, self.mac_weights, self.commands, self.elements,
                        list(self.reads))


@dataclass
class PimProgram:
    """A device program: 64-bit command words (numpy ``uint64``) and, by command index, the data words of WR/WRGB
    commands (a list of column words or a ``count x column_bits / 8`` array of bytes)."""

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
    rules:
        The timing-rule table (default: the channel's).
    """

    def __init__(self, device: DeviceConfig, functional: bool = True, dedup: bool = True,
                 periodic: bool = True, rules: Iterable[TimingRule] = PIM_TIMING_RULES) -> None:
        check_device_fits(device)  # command words must address every channel, bank, row and column
        self.device = device
        self.rules = RuleTable.of(rules)
        self.functional = functional
        self.dedup = dedup and not functional
        self.periodic = periodic and not functional
        p = device.pim
        self._bs = device.bitserial if p.lane == "bitserial" else None
        # timing-only engines are built when a channel first runs (equal channels share one)
        self.channels: list[ChannelEngine | None] = (
            [ChannelEngine(p, self._bs, True, rules=self.rules) for _ in range(p.channels)] if functional
            else [None] * p.channels)

    def _channel(self, c: int) -> ChannelEngine:
        if self.channels[c] is None:
            self.channels[c] = ChannelEngine(self.device.pim, self._bs, self.functional, rules=self.rules)
        return self.channels[c]

    def run(self, program: Any, strict: bool = False) -> RunStats:
        """Run a program (:class:`PimProgram`, words, or ``(word, data)`` pairs). Returns device totals.

        Every command issues at its earliest legal cycle; ``strict``: in the cycle after the previous command of its
        channel, as the RTL's strict mode checks it (a command issued too early raises
        :class:`~accel.interfaces.pim.PimTimingError`). An error records the index of the command that caused it
        (:func:`accel.errors.caused_by`)."""
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
            raise caused_by(AccelError(f"command {i} addresses channel {int(ch[i])}; the device has {nch} channels "
                                       f"(0..{nch - 1})"), None, i)
        top = 1 << self.device.pim.column_bits
        for i, d in prog.data.items():
            if isinstance(d, (list, tuple)) and any(not 0 <= int(x) < top for x in d):
                raise caused_by(AccelError(f"command {i}: data words must be {self.device.pim.column_bits}-bit "
                                           f"column words (0 .. {top - 1:#x})"), None, i)
        order = np.argsort(ch, kind="stable")
        bounds = np.searchsorted(ch[order], np.arange(nch + 1))
        # a command's timing signature: the word without its channel and row (rows do not change the schedule; a
        # CFR's row is its value and stays); functional runs need every channel
        rep = list(range(nch))
        if self.dedup:
            keyed = timing_signature(w)[order]
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
            chan = self._channel(c)
            before = chan.commands
            try:
                if strict:
                    for i, r in zip(idx.tolist(), table):
                        chan.issue(*r, data=prog.data.get(i), at=chan.next)
                    continue
                sig = chan.block_signature(cols).tolist() if self.periodic else None
                chan.run_table(table, prog.data, idx.tolist(), periodic=self.periodic, sig=sig)
            except AccelError as e:
                raise caused_by(e, None, int(idx[min(chan.commands - before, len(idx) - 1)])) from None
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

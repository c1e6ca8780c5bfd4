"""The PIM channel in Amaranth: banks of DRAM (memories), row buffers, timing counters, MAC lanes, global buffer.

Cycle for cycle and bit for bit the same as the per-cycle model ``accel.emulator.units.pim.PimChannel`` (its
docstring and ``docs/pim.md`` specify the behaviour): a command word enters the head register, issues from there at
the earliest cycle its timing counters allow (wait mode) or raises ``error`` with the rule's code in its first cycle
in the head (``strict``), run-length commands issue element by element; WR/WRGB take a ``wdata`` word per element;
read data leaves on ``rdata`` ``rd_latency`` (RD) or ``rdmac_latency`` (RDMAC) cycles after the issue.

The timing counters are generated at elaboration from the rule table of ``accel/interfaces/pim.py``
(:func:`~accel.interfaces.pim.compile_rules`): one countdown counter per source (rows with the same level and
preceding commands) and bank, bank group or channel, as wide as the source's longest latency (a ring of ``window``
counters for window rules); a row is broken while its counter exceeds the row's threshold; the lowest broken code
wins.

Each bank's array is an ``amaranth.lib.memory.Memory`` of ``rows x columns`` words with a synchronous,
write-transparent read port fed with the next cycle's address (the MAC lanes consume the addressed column in the cycle
the command issues; a synchronous port maps to block RAM) and a write port, or (``external_arrays``, for full-size
presets) an instance of an external memory module with the same port (:mod:`accel.rtl.bank_array`). Each bank's MAC
unit is a :class:`BankMac`: bit-parallel int8 x int8 lanes for ``lane="int8"``; for ``lane="bitserial"`` instances of
the bit-serial unit of ``rtl/bitserial.py`` consuming packed columns (docs/pim.md, "The bank's MAC unit").
"""
from __future__ import annotations

from typing import Iterable

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from accel.config import BankUnit, BitSerialConfig, PimConfig
from accel.interfaces.pim import (
    ACC_BITS, BANK_TARGETS, CFR_FORMAT, CFR_REGISTERS, PIM_TIMING_RULES, PimRule, TimingRule, compile_rules,
    format_pace, rdata_bits,
)
from accel.isa import TABLES, Family, PimOp

from .bank_array import bank_array
from .bitserial import BitSerialUnit

__all__ = ["PimChannel", "PimBank", "BankMac"]


class PimBank(wiring.Component):
    """One bank's array: a memory of ``rows x columns`` column words with a synchronous, write-transparent read port
    and a write port (block RAM on an FPGA).

    The channel reads the column its head addresses in the cycle the command issues; a synchronous port delivers
    that if it is given the address one cycle early: ``next_row, next_col`` are the address of the *next* cycle, so
    ``rdata`` is, in every cycle, the column at the address ``row, col`` of that cycle (including a write to it in the
    previous cycle).

    Members
    -------
    row, col: In
        Address of the column written this cycle.
    next_row, next_col: In
        Address ``row, col`` will have in the next cycle.
    rdata: Out(column_bits)
        The column at ``row, col``.
    we: In(1), wdata: In(column_bits)
        Write the addressed column at the clock edge.

    ``external``: the array is an instance of the external module of :mod:`accel.rtl.bank_array` (a hard macro,
    with a behavioural Verilog model for simulation) instead of a ``Memory``; the port and its timing are the same.
    """

    def __init__(self, pim: PimConfig, external: bool = False) -> None:
        self.pim = pim
        self.external = external
        super().__init__({
            "row": In(pim.row_address_bits), "col": In(pim.column_address_bits),
            "next_row": In(pim.row_address_bits), "next_col": In(pim.column_address_bits),
            "rdata": Out(pim.column_bits), "we": In(1), "wdata": In(pim.column_bits),
        })

    def elaborate(self, platform) -> Module:
        p = self.pim
        m = Module()
        cbits = max(0, (p.columns - 1).bit_length())
        rbits = max(0, (p.rows - 1).bit_length())

        def addr(row: Value, col: Value) -> Value:
            return Cat(col[:cbits], row[:rbits]) if cbits else row[:rbits]

        if self.external:
            m.submodules.array = bank_array(p.rows * p.columns, p.column_bits, addr(self.next_row, self.next_col),
                                            self.rdata, self.we, addr(self.row, self.col), self.wdata)
            return m
        m.submodules.mem = mem = Memory(shape=unsigned(p.column_bits), depth=p.rows * p.columns, init=[])
        wp = mem.write_port()
        rp = mem.read_port(transparent_for=(wp,))
        m.d.comb += [rp.addr.eq(addr(self.next_row, self.next_col)), wp.addr.eq(addr(self.row, self.col)),
                     self.rdata.eq(rp.data), wp.data.eq(self.wdata), wp.en.eq(self.we)]
        return m


class BankMac(wiring.Component):
    """One bank's MAC unit (docs/pim.md, "The bank's MAC unit"), cycle for cycle the per-cycle model's
    :class:`accel.emulator.units.pim.BankMac`.

    Bit-serial banks: ``units`` instances of :class:`accel.rtl.bitserial.BitSerialUnit`, the metadata register, each
    unit's latched metadata entry, a column sequencer (for formats whose columns hold several beats per unit) and one
    accumulator per unit. Bit-parallel banks: ``mac_lanes`` int8 multipliers, one slice of the column per cycle.

    Parameters
    ----------
    unit:
        The bank's :class:`~accel.config.BankUnit`.

    Members
    -------
    mac: In(1)
        A MAC element issues on this bank this cycle (on column ``col``, whose word is ``data``).
    clear: In(1)
        CLRMAC this cycle (a result arriving in the same cycle survives).
    col: In(column address bits), data: In(column_bits)
        The addressed column and its contents (the bank array's read port).
    fmt: In
        The bank's format register (code storage bits).
    acts__<f>: In(column_bits * 8 / f) for every format ``f``
        The global-buffer columns a MAC of ``col`` reads in format ``f``.
    rdmac: Out(mac_registers * 32)
        The accumulators as RDMAC reads them (each sign-extended or truncated to 32 bits, register 0 lowest).
    """

    def __init__(self, unit: BankUnit) -> None:
        self.unit = unit
        p = unit.pim
        members = {
            "mac": In(1), "clear": In(1), "col": In(p.column_address_bits), "data": In(p.column_bits),
            "fmt": In(range(max(unit.formats) + 1)), "rdmac": Out(unit.mac_registers * ACC_BITS),
        }
        for f in unit.formats:
            members[f"acts__{f}"] = In(p.column_bits * unit.gb_columns_per_mac(f))
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        u = self.unit
        if u.bitserial is None:
            accs = self._int8(m)
        else:
            accs = self._bitserial(m)
        m.d.comb += self.rdmac.eq(Cat(*[_to32(a) for a in accs]))
        return m

    def _sequencer(self, m: Module, nbeats: dict[int, int], spacing: dict[int, int], wide: int):
        """Feed this cycle's beat: beat 0 in the MAC's issue cycle (from the port), beat ``k`` ``k * spacing``
        cycles later (from the latched column and activations). Returns (feed, beat, data, acts, fmt, col)."""
        u, p = self.unit, self.unit.pim
        is_meta = Signal()
        if u.bitserial is not None:
            with m.Switch(self.fmt):
                for f in u.formats:
                    with m.Case(f):
                        m.d.comb += is_meta.eq(self.col < u.metadata_columns(f))
        start = Signal()
        m.d.comb += start.eq(self.mac & ~is_meta)
        acts_now = Signal(wide)
        with m.Switch(self.fmt):
            for f in u.formats:
                with m.Case(f):
                    m.d.comb += acts_now.eq(getattr(self, f"acts__{f}"))
        feed = Signal()
        nmax = max(nbeats.values())
        beat = Signal(range(max(2, nmax)))
        f_data = Signal(p.column_bits)
        f_acts = Signal(wide)
        f_fmt = Signal.like(self.fmt)
        f_col = Signal.like(self.col)
        m.d.comb += [f_data.eq(self.data), f_acts.eq(acts_now), f_fmt.eq(self.fmt), f_col.eq(self.col)]
        if nmax == 1:
            m.d.comb += feed.eq(start)
            return is_meta, feed, beat, f_data, f_acts, f_fmt, f_col
        s_valid = Signal()
        s_beat = Signal(range(nmax))
        s_timer = Signal(range(max(spacing.values())))
        s_data = Signal(p.column_bits)
        s_acts = Signal(wide)
        s_fmt = Signal.like(self.fmt)
        s_col = Signal.like(self.col)
        with m.If(start):
            m.d.comb += feed.eq(1)
        with m.Elif(s_valid & (s_timer == 0)):
            m.d.comb += [feed.eq(1), beat.eq(s_beat), f_data.eq(s_data), f_acts.eq(s_acts), f_fmt.eq(s_fmt),
                         f_col.eq(s_col)]
        with m.If(start):
            m.d.sync += [s_beat.eq(1), s_data.eq(self.data), s_acts.eq(acts_now), s_fmt.eq(self.fmt),
                         s_col.eq(self.col)]
            with m.Switch(self.fmt):
                for f in u.formats:
                    with m.Case(f):
                        m.d.sync += [s_valid.eq(nbeats[f] > 1), s_timer.eq(spacing[f] - 1)]
        with m.Elif(s_valid):
            with m.If(s_timer == 0):
                m.d.sync += s_beat.eq(s_beat + 1)
                with m.Switch(s_fmt):
                    for f in u.formats:
                        with m.Case(f):
                            m.d.sync += s_timer.eq(spacing[f] - 1)
                            with m.If(s_beat == nbeats[f] - 1):
                                m.d.sync += s_valid.eq(0)
            with m.Else():
                m.d.sync += s_timer.eq(s_timer - 1)
        return is_meta, feed, beat, f_data, f_acts, f_fmt, f_col

    def _int8(self, m: Module) -> list[Signal]:
        u, p = self.unit, self.unit.pim
        lanes = p.mac_lanes
        n = u.cycles_per_column(8)
        _, feed, beat, data, acts, _, _ = self._sequencer(m, {8: n}, {8: 1}, p.column_bits)
        accs = []
        for i in range(lanes):
            acc = Signal(signed(ACC_BITS), name=f"acc{i}")
            w = Signal(signed(8), name=f"w{i}")
            a = Signal(signed(8), name=f"a{i}")
            with m.Switch(beat):
                for k in range(n):
                    with m.Case(k):
                        j = k * lanes + i
                        m.d.comb += [w.eq(data[8 * j:8 * j + 8]), a.eq(acts[8 * j:8 * j + 8])]
            m.d.sync += acc.eq(Mux(self.clear, 0, acc) + Mux(feed, w * a, 0))
            accs.append(acc)
        return accs

    def _bitserial(self, m: Module) -> list[Signal]:
        u, p = self.unit, self.unit.pim
        bs = u.bitserial
        lanes, e, cb = u.unit_lanes, u.entry_bits, p.column_bits
        bpg_bits = (bs.beats_per_group - 1).bit_length()
        wide = cb * max(u.gb_columns_per_mac(f) for f in u.formats)
        nbeats = {f: u.unit_beats(f) for f in u.formats}
        spacing = {f: u.format_terms(f) for f in u.formats}
        is_meta, feed, beat, data, acts, fmt, col = self._sequencer(m, nbeats, spacing, wide)
        # the metadata register: a MAC of metadata column c loads slice c
        meta = Signal(u.max_metadata_columns * cb)
        with m.If(self.mac & is_meta):
            for c in range(u.max_metadata_columns):
                with m.If(self.col == c):
                    m.d.sync += meta[c * cb:(c + 1) * cb].eq(self.data)
        entries = [meta[k * e:(k + 1) * e] for k in range(u.max_metadata_columns * cb // e)]
        accs = []
        for k in range(u.units):
            x = BitSerialUnit(bs)
            m.submodules[f"unit{k}"] = x
            latched = Signal(e, name=f"entry{k}")
            active = Signal(name=f"active{k}")
            starts = Signal(name=f"starts{k}")
            top = max(((p.columns - 1 - u.metadata_columns(f)) * nbeats[f] + nbeats[f] - 1)
                      // bs.beats_per_group * u.active_units(f) + u.active_units(f) for f in u.formats)
            index = Signal(range(max(2, top, len(entries) + 1)), name=f"index{k}")
            fetched = Signal(e, name=f"fetched{k}")
            codes = Signal(lanes * bs.max_weight_bits, name=f"codes{k}")
            a_beat = Signal(lanes * 8, name=f"acts{k}")
            ent = Signal(e, name=f"use{k}")
            dtype = Signal(bs.dtype_bits, name=f"dtype{k}")
            with m.Switch(fmt):
                for f in u.formats:
                    with m.Case(f):
                        na, n, mc = u.active_units(f), nbeats[f], u.metadata_columns(f)
                        if k >= na:
                            continue
                        m.d.comb += active.eq(1)
                        # row-local beat position p = (col - metadata columns) * unit_beats + beat (entry_index)
                        pos = (col - mc) * n + beat
                        m.d.comb += [starts.eq(pos[:bpg_bits] == 0) if bpg_bits else starts.eq(1),
                                     index.eq((pos >> bpg_bits) * na + k)]
                        with m.Switch(beat):
                            for mm in range(n):
                                with m.Case(mm):
                                    j = mm * na + k     # beat_of
                                    m.d.comb += [
                                        codes.eq(Cat(*[Cat(data[(j * lanes + i) * f:(j * lanes + i + 1) * f],
                                                           C(0, bs.max_weight_bits - f)) for i in range(lanes)])),
                                        a_beat.eq(acts[j * lanes * 8:(j + 1) * lanes * 8]),
                                    ]
                        # entry_datatype: a code outside the format's datatypes decodes as the format's first
                        ok_codes = [bs.dtype_codes[d] for d in u.datatypes_of(f)]
                        code = ent[:bs.dtype_bits]
                        m.d.comb += dtype.eq(Mux(Cat(*[code == c for c in ok_codes]).any(), code, ok_codes[0]))
            m.d.comb += fetched.eq(Mux(index < len(entries), Array(entries)[index], 0))
            m.d.comb += ent.eq(Mux(starts, fetched, latched))
            with m.If(feed & active & starts):
                m.d.sync += latched.eq(fetched)
            go = feed & active
            wv = x.wgt.payload
            m.d.comb += [
                x.act.valid.eq(go), x.wgt.valid.eq(go), x.res.ready.eq(1),
                x.act.payload.as_value().eq(a_beat),
                wv.codes.as_value().eq(codes), wv.dtype.eq(dtype), wv.scale.eq(ent[bs.dtype_bits:]), wv.last.eq(1),
            ]
            acc = Signal(signed(bs.acc_bits), name=f"acc{k}")
            m.d.sync += acc.eq(Mux(self.clear, 0, acc) + Mux(x.res.valid, Value.cast(x.res.payload).as_signed(), 0))
            accs.append(acc)
        return accs


def _to32(a: Value) -> Value:
    """A two's complement accumulator as a 32-bit word (sign-extended or truncated)."""
    w = len(a)
    return a[:ACC_BITS] if w >= ACC_BITS else Cat(a, a[-1].replicate(ACC_BITS - w))


class PimChannel(wiring.Component):
    """A PIM channel.

    Parameters
    ----------
    pim:
        The channel's :class:`~accel.config.PimConfig`.
    bitserial:
        The device's :class:`~accel.config.BitSerialConfig` when ``pim.lane == "bitserial"``.

    rules:
        The timing-rule table (default: the channel's, :data:`~accel.interfaces.pim.PIM_TIMING_RULES`).
    external_arrays:
        Build each bank's array as an external memory module (:class:`PimBank` ``external``).

    Members
    -------
    cmd: In(stream.Signature(64))
        Command words (``accel/isa.py``, family PIM).
    wdata: In(stream.Signature(column_bits))
        Data words of WR/WRGB elements.
    rdata: Out(valid, payload)
        Read beats (RD: a column; RDMAC: ``mac_lanes`` 32-bit accumulators); no backpressure, as a DRAM data bus.
    strict: In(1)
        Commands must be legal in their first cycle in the head (else ``error``); 0: they wait.
    issued: Out(1)
        A command element issues this cycle.
    error, error_code: Out(1), Out(error_code_bits)
        An error this cycle (then sticky), and the rule's code (:data:`~accel.interfaces.pim.PimRule`; 5 bits for the
        default table).
    """

    def __init__(self, pim: PimConfig, bitserial: BitSerialConfig | None = None,
                 rules: Iterable[TimingRule] = PIM_TIMING_RULES, external_arrays: bool = False) -> None:
        if not isinstance(pim, PimConfig):
            raise TypeError(f"pim must be a PimConfig, not {pim!r}")
        if pim.lane == "bitserial" and not isinstance(bitserial, BitSerialConfig):
            raise TypeError("lane = 'bitserial' needs the device's BitSerialConfig (bitserial=device.bitserial)")
        self.pim = pim
        self.bitserial = bitserial if pim.lane == "bitserial" else None
        self.unit = BankUnit(pim, self.bitserial)
        self.rules = compile_rules(self.unit, rules)
        self.external_arrays = external_arrays
        super().__init__({
            "cmd": In(stream.Signature(64)),
            "wdata": In(stream.Signature(pim.column_bits)),
            "rdata": Out(wiring.Signature({"valid": Out(1), "payload": Out(rdata_bits(self.unit))})),
            "strict": In(1),
            "issued": Out(1),
            "error": Out(1),
            "error_code": Out(self.rules.error_code_bits),
        })

    # ---------------------------------------------------------------------------------------------------------------
    def elaborate(self, platform) -> Module:
        p, t, rules, unit = self.pim, self.pim.timing, self.rules, self.unit
        m = Module()
        NB, NG, BPG = p.banks, p.bank_groups, p.banks_per_group
        code_bits = rules.error_code_bits
        table = TABLES[Family.PIM]
        w = dict(table.all_fields)

        # ---- head register
        h_valid = Signal()
        h_first = Signal()
        h_fam = Signal(w["family"])
        h_op = Signal(w["op"])
        h_ab = Signal()
        h_bank = Signal(w["bank"])
        h_row = Signal(w["row"])
        h_col = Signal(w["col"])
        h_count = Signal(w["count"])

        # ---- per bank state
        banks = [PimBank(p, self.external_arrays) for _ in range(NB)]
        for b, bk in enumerate(banks):
            m.submodules[f"bank{b}"] = bk
        b_open = [Signal(name=f"open{b}") for b in range(NB)]
        b_row = [Signal(p.row_address_bits, name=f"row{b}") for b in range(NB)]
        b_fmt = [Signal(range(max(unit.formats) + 1), init=unit.reset_format, name=f"fmt{b}") for b in range(NB)]
        gb = [Signal(p.column_bits, name=f"gb{i}") for i in range(p.gb_columns)]
        depth = max(t.rd_latency, t.rdmac_latency)
        rbits = rdata_bits(unit)
        pipe_v = [Signal(name=f"pipe_v{k}") for k in range(depth)]
        pipe_d = [Signal(rbits, name=f"pipe_d{k}") for k in range(depth)]
        err_sticky = Signal()
        err_code_r = Signal(code_bits)

        # ---- decode of the head
        op_is = {o: Signal(name=f"is_{o.name}") for o in PimOp}
        for o, s in op_is.items():
            m.d.comb += s.eq(h_op == int(o))
        target = [Signal(name=f"target{b}") for b in range(NB)]
        for b in range(NB):
            m.d.comb += target[b].eq(Mux(op_is[PimOp.RDMAC], h_bank == b, h_ab | (h_bank == b)))
        bank_ok = h_bank < NB

        # ---- illegal commands (checked in the first cycle in the head)
        opcode_bad = (h_fam != int(Family.PIM)) | (h_op > max(int(o) for o in PimOp))
        col_end = h_col + h_count
        addr_bad = Signal()
        needs_bank = ~(op_is[PimOp.NOP] | op_is[PimOp.REF] | op_is[PimOp.WRGB])
        bank_cols = op_is[PimOp.RD] | op_is[PimOp.WR] | op_is[PimOp.MAC]
        cfr_reg_ok = Cat(*[h_col == r for r in CFR_REGISTERS]).any()
        m.d.comb += addr_bad.eq(
            (needs_bank & ~h_ab & ~bank_ok)
            | (op_is[PimOp.RD] & h_ab)
            | (op_is[PimOp.ACT] & (h_row >= p.rows))
            | (bank_cols & (col_end > p.columns))
            | (op_is[PimOp.WRGB] & (col_end > p.gb_columns))
            | (op_is[PimOp.RDMAC] & (h_bank + h_count > NB))
            | (op_is[PimOp.CFR] & ~cfr_reg_ok))
        cfr_bad = Signal()
        fmt_ok = Cat(*[h_row == f for f in unit.formats]).any()
        m.d.comb += cfr_bad.eq(op_is[PimOp.CFR] & (h_col == CFR_FORMAT) & ~fmt_ok)
        any_closed = Cat(*[target[b] & ~b_open[b] for b in range(NB)]).any()
        any_open_t = Cat(*[target[b] & b_open[b] for b in range(NB)]).any()
        any_open = Cat(*b_open).any()
        closed_bad = bank_cols & any_closed
        open_bad = (op_is[PimOp.ACT] & any_open_t) | (op_is[PimOp.REF] & any_open)
        ill_code = Signal(code_bits)
        with m.If(opcode_bad):
            m.d.comb += ill_code.eq(PimRule.OPCODE)
        with m.Elif(addr_bad):
            m.d.comb += ill_code.eq(PimRule.ADDRESS)
        with m.Elif(cfr_bad):
            m.d.comb += ill_code.eq(PimRule.CFR_VALUE)
        with m.Elif(closed_bad):
            m.d.comb += ill_code.eq(PimRule.CLOSED)
        with m.Elif(open_bad):
            m.d.comb += ill_code.eq(PimRule.OPEN)
        illegal = h_first & (ill_code != 0)

        # ---- timing rules, generated from the table: the banks and groups each op acts on, its forms
        def acts_on(op: PimOp, b: int) -> Value:
            kind = BANK_TARGETS[op]
            if kind == "all":
                return Const(1)
            if kind == "bank":
                return h_bank == b
            on = h_ab | (h_bank == b)
            return on & b_open[b] if kind == "open" else on

        acts = {o: [acts_on(o, b) for b in range(NB)] for o in PimOp if BANK_TARGETS[o] != "none"}
        gacts = {o: [Cat(*a[g * BPG:(g + 1) * BPG]).any() for g in range(NG)] for o, a in acts.items()}

        def forms_of(forms: frozenset[tuple[int, int]]) -> dict[PimOp, Value]:
            """op -> whether the head's all-bank flag is one of the op's forms in ``forms``."""
            out = {}
            for o in PimOp:
                flags = {ab for op, ab in forms if op == int(o)}
                if flags:
                    out[o] = Const(1) if flags == {0, 1} else (h_ab if flags == {1} else ~h_ab)
            return out

        # a MAC column keeps a bank's MAC unit busy for its format's pace (dynamic sources)
        pace = format_pace(unit)
        terms = []
        if any(s.dynamic for s in rules.sources):
            for b in range(NB):
                tb = Signal(range(max(pace.values()) + 1), name=f"terms{b}")
                m.d.comb += tb.eq(1)
                with m.Switch(b_fmt[b]):
                    for f, n in pace.items():
                        with m.Case(f):
                            m.d.comb += tb.eq(n)
                terms.append(tb)

        # one counter per source and bank / group / channel (a ring of them for a window), and its ring pointer
        cnt: dict[int, list[Signal]] = {}
        ring: dict[int, Signal] = {}
        for src in rules.sources:
            n = {"bank": NB, "bg": NG, "ch": src.window}[src.level]
            cnt[src.index] = [Signal(range(src.length + 1), name=f"t_{src.name}{i}") for i in range(n)]
            if src.window > 1:
                ring[src.index] = Signal(range(src.window), name=f"t_{src.name}_ptr")

        def now(src) -> Value:
            """A ch source's counter that the head checks: the oldest of its ring."""
            cs = cnt[src.index]
            return Array(cs)[ring[src.index]] if src.window > 1 else cs[0]

        viol: dict[int, list[Value]] = {}
        for r in rules.rows:
            src, cs, thr = r.source, cnt[r.source.index], r.threshold
            broken = []
            for o, form in forms_of(r.following).items():
                if src.level == "ch":
                    hit = now(src) > thr
                elif src.level == "bank":
                    hit = Cat(*[acts[o][b] & (cs[b] > thr) for b in range(NB)]).any()
                else:
                    hit = Cat(*[gacts[o][g] & (cs[g] > thr) for g in range(NG)]).any()
                broken.append(op_is[o] & form & hit)
            viol.setdefault(r.code, []).append(Cat(*broken).any())
        tim_code = Signal(code_bits)
        for i, code in enumerate(sorted(viol)):
            with (m.If if i == 0 else m.Elif)(Cat(*viol[code]).any()):
                m.d.comb += tim_code.eq(code)
        violated = tim_code != 0

        needs_data = op_is[PimOp.WR] | op_is[PimOp.WRGB]
        issue = Signal()
        drop = Signal()
        err_now = Signal()
        code_now = Signal(code_bits)
        with m.If(h_valid):
            with m.If(illegal):
                m.d.comb += [drop.eq(1), err_now.eq(1), code_now.eq(ill_code)]
            with m.Elif(violated):
                with m.If(self.strict & h_first):
                    m.d.comb += [drop.eq(1), err_now.eq(1), code_now.eq(tim_code)]
            with m.Elif(~needs_data | self.wdata.valid):
                m.d.comb += issue.eq(1)
        last_elem = h_count <= 1
        m.d.comb += [
            self.cmd.ready.eq(~h_valid | drop | (issue & last_elem)),
            self.wdata.ready.eq(issue & needs_data),
            self.rdata.valid.eq(pipe_v[0]),
            self.rdata.payload.eq(pipe_d[0]),
            self.issued.eq(issue),
            self.error.eq(err_sticky | err_now),
            self.error_code.eq(Mux(err_now, code_now, err_code_r)),
        ]

        # ---- banks: addresses, reads, writes, MACs
        gcols = p.gb_columns
        bank_rdata = []
        # next cycle's head column and open rows (the banks' synchronous read ports are addressed one cycle early)
        word = data.View(table.layout(), self.cmd.payload)
        load = self.cmd.valid & self.cmd.ready
        h_col_nxt = Signal.like(h_col)
        m.d.comb += h_col_nxt.eq(h_col)
        with m.If(load):
            m.d.comb += h_col_nxt.eq(word.col)
        with m.Elif(issue & ~op_is[PimOp.RDMAC]):
            m.d.comb += h_col_nxt.eq(h_col + 1)
        m.d.sync += h_col.eq(h_col_nxt)
        b_row_nxt = [Signal.like(b_row[b], name=f"row_nxt{b}") for b in range(NB)]
        for b in range(NB):
            m.d.comb += b_row_nxt[b].eq(Mux(issue & op_is[PimOp.ACT] & target[b], h_row, b_row[b]))
            m.d.sync += b_row[b].eq(b_row_nxt[b])
        for b, bk in enumerate(banks):
            m.d.comb += [bk.row.eq(b_row[b]), bk.col.eq(h_col), bk.next_row.eq(b_row_nxt[b]),
                         bk.next_col.eq(h_col_nxt), bk.wdata.eq(self.wdata.payload),
                         bk.we.eq(issue & op_is[PimOp.WR] & target[b])]
            bank_rdata.append(bk.rdata)
        # the global-buffer columns a MAC of the head's column reads, per format: col * r .. col * r + r - 1
        gb_arr = Array(gb)
        gb_acts = {}
        for f in unit.formats:
            r = unit.gb_columns_per_mac(f)
            sel = []
            for k in range(r):
                idx = h_col * r + k
                sel.append(gb_arr[idx % gcols] if gcols > 1 else gb[0])
            gb_acts[f] = Cat(*sel)
        macs = []
        for b in range(NB):
            mu = BankMac(unit)
            m.submodules[f"mac{b}"] = mu
            m.d.comb += [mu.mac.eq(issue & op_is[PimOp.MAC] & target[b]),
                         mu.clear.eq(issue & op_is[PimOp.CLRMAC] & target[b]),
                         mu.col.eq(h_col), mu.data.eq(bank_rdata[b]), mu.fmt.eq(b_fmt[b])]
            for f in unit.formats:
                m.d.comb += getattr(mu, f"acts__{f}").eq(gb_acts[f])
            macs.append(mu)

        # ---- state updates at the edge
        iss = {o: issue & op_is[o] for o in PimOp}
        for b in range(NB):
            tb = target[b]
            with m.If(iss[PimOp.ACT] & tb):
                m.d.sync += b_open[b].eq(1)
            with m.If(iss[PimOp.PRE] & tb):
                m.d.sync += b_open[b].eq(0)
            with m.If(iss[PimOp.CFR] & tb & (h_col == CFR_FORMAT)):
                m.d.sync += b_fmt[b].eq(h_row)

        # timing counters: an issue of a preceding command raises its sources' counters to their length (a
        # dynamic source: to the bank's terms) for the banks / groups it acts on; every counter counts down
        def bump(sig: Signal, n: Value | int, when: Value) -> None:
            with m.If(when):
                m.d.sync += sig.eq(Mux(sig > n, sig, n) - 1)
            with m.Elif(sig != 0):
                m.d.sync += sig.eq(sig - 1)

        for src in rules.sources:
            cs = cnt[src.index]
            fires = forms_of(src.preceding)
            if src.level == "ch":
                fire = Cat(*[iss[o] & form for o, form in fires.items()]).any()
                if src.window > 1:
                    ptr = ring[src.index]
                    for i, c in enumerate(cs):
                        bump(c, src.length, fire & (ptr == i))
                    with m.If(fire):
                        m.d.sync += ptr.eq(Mux(ptr == src.window - 1, 0, ptr + 1))
                else:
                    bump(cs[0], src.length, fire)
                continue
            on = acts if src.level == "bank" else gacts
            for i, c in enumerate(cs):
                when = Cat(*[iss[o] & form & on[o][i] for o, form in fires.items()]).any()
                bump(c, terms[i] + src.offset if src.dynamic else src.length, when)

        # bus data: the read pipeline (shift, then insert at latency - 1)
        for i in range(gcols):
            with m.If(iss[PimOp.WRGB] & (h_col == i)):
                m.d.sync += gb[i].eq(self.wdata.payload)
        rd_word = Signal(p.column_bits)
        m.d.comb += rd_word.eq(Array(bank_rdata)[h_bank] if NB > 1 else bank_rdata[0])
        # RDMAC beat: the bank's accumulators as 32-bit two's complement words
        mac_word = Signal(unit.mac_registers * ACC_BITS)
        words = [mu.rdmac for mu in macs]
        m.d.comb += mac_word.eq(Array(words)[h_bank] if NB > 1 else words[0])
        for k in range(depth):
            nv = pipe_v[k + 1] if k + 1 < depth else Const(0)
            nd = pipe_d[k + 1] if k + 1 < depth else Const(0, rbits)
            with m.If(iss[PimOp.RD] & (k == t.rd_latency - 1)):
                m.d.sync += [pipe_v[k].eq(1), pipe_d[k].eq(rd_word)]
            with m.Elif(iss[PimOp.RDMAC] & (k == t.rdmac_latency - 1)):
                m.d.sync += [pipe_v[k].eq(1), pipe_d[k].eq(mac_word)]
            with m.Else():
                m.d.sync += [pipe_v[k].eq(nv), pipe_d[k].eq(nd)]

        with m.If(err_now):
            m.d.sync += [err_sticky.eq(1), err_code_r.eq(code_now)]

        # ---- head register: advance a run, drop, load
        with m.If(issue):
            m.d.sync += [h_first.eq(0), h_count.eq(h_count - 1)]
            with m.If(op_is[PimOp.RDMAC]):
                m.d.sync += h_bank.eq(h_bank + 1)
            with m.If(last_elem):
                m.d.sync += h_valid.eq(0)
        with m.If(drop):
            m.d.sync += h_valid.eq(0)
        with m.If(load):
            rdmac_all = (word.op == int(PimOp.RDMAC)) & word.all_banks
            m.d.sync += [
                h_valid.eq(1), h_first.eq(1), h_fam.eq(word.family), h_op.eq(word.op),
                h_row.eq(word.row),
                h_ab.eq(word.all_banks & ~rdmac_all),
                h_bank.eq(Mux(rdmac_all, 0, word.bank)),
                h_count.eq(Mux(rdmac_all, NB, Mux(word.count == 0, 1, word.count))),
            ]
        return m

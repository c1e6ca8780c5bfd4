"""The PIM channel in Amaranth: banks of DRAM (memories), row buffers, timing counters, MAC lanes, global buffer.

Cycle for cycle and bit for bit the same as the per-cycle model :class:`accel.emulator.units.pim.PimChannel` (its
docstring and ``docs/pim.md`` specify the behaviour): a command word enters the head register, issues from there at
the earliest cycle its timing counters allow (wait mode) or raises ``error`` with the rule's code in its first cycle
in the head (``strict``), run-length commands issue element by element; WR/WRGB take a ``wdata`` word per element;
read data leaves on ``rdata`` ``nCL`` (RD) or ``nBL`` (RDMAC) cycles after the issue.

Each bank's array is an ``amaranth.lib.memory.Memory`` of ``rows x columns`` words with a synchronous,
write-transparent read port fed with the next cycle's address (the MAC lanes consume the addressed column in the cycle
the command issues; a synchronous port maps to block RAM) and a write port. The MAC lanes are
bit-parallel: int8 x int8 for ``lane="int8"``; for ``lane="bitserial"`` they evaluate the bit-serial unit's numerics
in one cycle (code -> value of the bank's datatype, times activation, times the bank's group scale, added modulo
``2**acc_bits`` — equal to the serial shift-and-add dequantiser); the bit-serial datapath of ``rtl/bitserial.py`` is
not instantiated here (see docs/pim.md).
"""
from __future__ import annotations

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from accel.config import BITSERIAL_DATATYPES, BitSerialConfig, PimConfig
from accel.emulator.units.pim import (
    ACC_BITS, CFR_CHANNEL_REGS, CFR_DTYPE, CFR_SCALE, ERROR_CODE_BITS, PimRule, Timing, rdata_bits,
)
from accel.isa import TABLES, Family, PimOp
from accel.numerics import DATATYPES

__all__ = ["PimChannel", "PimBank"]


def _ceil_bits(n: int) -> int:
    return max(1, int(n).bit_length())


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
    """

    def __init__(self, pim: PimConfig) -> None:
        self.pim = pim
        super().__init__({
            "row": In(pim.row_address_bits), "col": In(pim.column_address_bits),
            "next_row": In(pim.row_address_bits), "next_col": In(pim.column_address_bits),
            "rdata": Out(pim.column_bits), "we": In(1), "wdata": In(pim.column_bits),
        })

    def elaborate(self, platform) -> Module:
        p = self.pim
        m = Module()
        cbits = max(0, (p.columns - 1).bit_length())
        m.submodules.mem = mem = Memory(shape=unsigned(p.column_bits), depth=p.rows * p.columns, init=[])
        wp = mem.write_port()
        rp = mem.read_port(transparent_for=(wp,))
        rbits = max(0, (p.rows - 1).bit_length())

        def addr(row: Value, col: Value) -> Value:
            return Cat(col[:cbits], row[:rbits]) if cbits else row[:rbits]

        m.d.comb += [rp.addr.eq(addr(self.next_row, self.next_col)), wp.addr.eq(addr(self.row, self.col)),
                     self.rdata.eq(rp.data), wp.data.eq(self.wdata), wp.en.eq(self.we)]
        return m


class PimChannel(wiring.Component):
    """A PIM channel.

    Parameters
    ----------
    pim:
        The channel's :class:`~accel.config.PimConfig`.
    bitserial:
        The device's :class:`~accel.config.BitSerialConfig` when ``pim.lane == "bitserial"``.

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
    error, error_code: Out(1), Out(5)
        An error this cycle (then sticky), and the :class:`~accel.emulator.units.pim.PimRule` code.
    """

    def __init__(self, pim: PimConfig, bitserial: BitSerialConfig | None = None) -> None:
        if not isinstance(pim, PimConfig):
            raise TypeError(f"pim must be a PimConfig, not {pim!r}")
        if pim.lane == "bitserial" and not isinstance(bitserial, BitSerialConfig):
            raise TypeError("lane = 'bitserial' needs the device's BitSerialConfig (bitserial=device.bitserial)")
        self.pim = pim
        self.bitserial = bitserial if pim.lane == "bitserial" else None
        self.t = Timing.of(pim.timing)
        super().__init__({
            "cmd": In(stream.Signature(64)),
            "wdata": In(stream.Signature(pim.column_bits)),
            "rdata": Out(wiring.Signature({"valid": Out(1), "payload": Out(rdata_bits(pim))})),
            "strict": In(1),
            "issued": Out(1),
            "error": Out(1),
            "error_code": Out(ERROR_CODE_BITS),
        })

    # ---------------------------------------------------------------------------------------------------------------
    def elaborate(self, platform) -> Module:
        p, t = self.pim, self.t
        bs = self.bitserial
        m = Module()
        NB, NG, BPG, L, S = p.banks, p.bank_groups, p.banks_per_group, p.mac_lanes, p.slot_bits
        acc_bits = bs.acc_bits if bs else ACC_BITS
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
        banks = [PimBank(p) for _ in range(NB)]
        for b, bk in enumerate(banks):
            m.submodules[f"bank{b}"] = bk
        b_open = [Signal(name=f"open{b}") for b in range(NB)]
        b_row = [Signal(p.row_address_bits, name=f"row{b}") for b in range(NB)]
        acc = [[Signal(signed(acc_bits), name=f"acc{b}_{i}") for i in range(L)] for b in range(NB)]
        dtype_bits = max(1, (len(BITSERIAL_DATATYPES) - 1).bit_length())
        default_dtype = bs.dtype_codes[bs.datatypes[0]] if bs else 0
        b_dtype = [Signal(dtype_bits, init=default_dtype, name=f"dtype{b}") for b in range(NB)]
        sbits = bs.scale_bits if bs else 8
        b_scale = [Signal(sbits, init=1, name=f"scale{b}") for b in range(NB)]

        def counter(name: str, top: int) -> Signal:
            return Signal(range(top + 1), name=name)

        bank_keys = {"rcd_rd": t.rcd_rd, "rcd_wr": t.rcd_wr, "rcd_mac": t.rcd_mac, "rp": t.rp, "ras": t.ras,
                     "rc": t.rc, "rtp": t.rtp, "wr": t.wr}
        bc = [{k: counter(f"{k}{b}", n) for k, n in bank_keys.items()} for b in range(NB)]
        # bit-serial lanes: a MAC column keeps a bank's lanes busy for terms(datatype) cycles
        max_terms = bs.max_terms if bs else 1
        mac_busy = [counter(f"mac_busy{b}", max_terms) for b in range(NB)]
        rrd_l = [counter(f"rrd_l{g}", t.rrd_l) for g in range(NG)]
        ccd_l = [counter(f"ccd_l{g}", t.ccd_l) for g in range(NG)]
        rrd_s, ccd_s = counter("rrd_s", t.rrd_s), counter("ccd_s", t.ccd_s)
        ccd_ab, rfc = counter("ccd_ab", t.ccd_ab), counter("rfc", t.rfc)
        bus_top = max(t.rd_latency, t.rdmac_latency) + t.bl
        bus = counter("bus", bus_top)
        faw = [counter(f"faw{i}", t.faw) for i in range(4)]
        faw_ptr = Signal(2)
        gb = [Signal(p.column_bits, name=f"gb{i}") for i in range(p.gb_columns)]
        depth = max(t.rd_latency, t.rdmac_latency)
        pipe_v = [Signal(name=f"pipe_v{k}") for k in range(depth)]
        pipe_d = [Signal(rdata_bits(p), name=f"pipe_d{k}") for k in range(depth)]
        err_sticky = Signal()
        err_code_r = Signal(ERROR_CODE_BITS)

        # ---- decode of the head
        op_is = {o: Signal(name=f"is_{o.name}") for o in PimOp}
        for o, s in op_is.items():
            m.d.comb += s.eq(h_op == int(o))
        target = [Signal(name=f"target{b}") for b in range(NB)]
        for b in range(NB):
            m.d.comb += target[b].eq(Mux(op_is[PimOp.RDMAC], h_bank == b, h_ab | (h_bank == b)))
        gtarget = [Signal(name=f"gtarget{g}") for g in range(NG)]
        for g in range(NG):
            m.d.comb += gtarget[g].eq(Cat(*target[g * BPG:(g + 1) * BPG]).any())
        bank_ok = h_bank < NB

        # ---- illegal commands (checked in the first cycle in the head)
        opcode_bad = (h_fam != int(Family.PIM)) | (h_op > max(int(o) for o in PimOp))
        col_end = h_col + h_count
        addr_bad = Signal()
        needs_bank = ~(op_is[PimOp.NOP] | op_is[PimOp.REF] | op_is[PimOp.WRGB])
        bank_cols = op_is[PimOp.RD] | op_is[PimOp.WR] | op_is[PimOp.MAC]
        cfr_reg_ok = Cat(*[h_col == r for r in (*CFR_CHANNEL_REGS, CFR_DTYPE, CFR_SCALE)]).any()
        m.d.comb += addr_bad.eq(
            (needs_bank & ~h_ab & ~bank_ok)
            | (op_is[PimOp.RD] & h_ab)
            | (op_is[PimOp.ACT] & (h_row >= p.rows))
            | (bank_cols & (col_end > p.columns))
            | (op_is[PimOp.WRGB] & (col_end > p.gb_columns))
            | (op_is[PimOp.RDMAC] & (h_bank + h_count > NB))
            | (op_is[PimOp.CFR] & ~cfr_reg_ok))
        cfr_bad = Signal()
        if bs is not None:
            dtype_ok = Cat(*[h_row == c for c in bs.dtype_codes.values()]).any()
            m.d.comb += cfr_bad.eq(op_is[PimOp.CFR] & (((h_col == CFR_DTYPE) & ~dtype_ok)
                                                        | ((h_col == CFR_SCALE) & (h_row >= (1 << bs.scale_bits)))))
        any_closed = Cat(*[target[b] & ~b_open[b] for b in range(NB)]).any()
        any_open_t = Cat(*[target[b] & b_open[b] for b in range(NB)]).any()
        any_open = Cat(*b_open).any()
        closed_bad = bank_cols & any_closed
        open_bad = (op_is[PimOp.ACT] & any_open_t) | (op_is[PimOp.REF] & any_open)
        ill_code = Signal(ERROR_CODE_BITS)
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

        # ---- timing rules broken now by the head's element, lowest code first
        def bank_any(key: str, cond=None) -> Value:
            return Cat(*[target[b] & (bc[b][key] != 0) & (cond[b] if cond is not None else 1)
                         for b in range(NB)]).any()

        def group_any(cs: list[Signal]) -> Value:
            return Cat(*[gtarget[g] & (cs[g] != 0) for g in range(NG)]).any()

        act_counted = ~h_ab if not t.faw_all_bank else Const(1)
        faw_now = Array(faw)[faw_ptr]
        viol = {
            PimRule.RCD_RD: op_is[PimOp.RD] & bank_any("rcd_rd"),
            PimRule.RCD_WR: op_is[PimOp.WR] & bank_any("rcd_wr"),
            PimRule.RCD_MAC: op_is[PimOp.MAC] & bank_any("rcd_mac"),
            PimRule.RP: (op_is[PimOp.ACT] & bank_any("rp"))
                        | (op_is[PimOp.REF] & Cat(*[bc[b]["rp"] != 0 for b in range(NB)]).any()),
            PimRule.RAS: op_is[PimOp.PRE] & bank_any("ras", b_open),
            PimRule.RC: op_is[PimOp.ACT] & bank_any("rc"),
            PimRule.RRD_S: op_is[PimOp.ACT] & (rrd_s != 0),
            PimRule.RRD_L: op_is[PimOp.ACT] & group_any(rrd_l),
            PimRule.FAW: op_is[PimOp.ACT] & act_counted & (faw_now != 0),
            PimRule.CCD_S: (bank_cols | op_is[PimOp.WRGB] | op_is[PimOp.RDMAC]) & (ccd_s != 0),
            PimRule.CCD_L: bank_cols & group_any(ccd_l),
            PimRule.CCD_AB: op_is[PimOp.MAC] & h_ab & (ccd_ab != 0),
            PimRule.WR: op_is[PimOp.PRE] & bank_any("wr", b_open),
            PimRule.RTP: op_is[PimOp.PRE] & bank_any("rtp", b_open),
            PimRule.RFC: (op_is[PimOp.ACT] | op_is[PimOp.REF]) & (rfc != 0),
            PimRule.BUS: (op_is[PimOp.RD] & (bus > t.rd_latency)) | (op_is[PimOp.RDMAC] & (bus > t.rdmac_latency)),
            PimRule.MAC_BUSY: op_is[PimOp.MAC] & Cat(*[target[b] & (mac_busy[b] != 0) for b in range(NB)]).any(),
        }
        tim_code = Signal(ERROR_CODE_BITS)
        first = True
        for rule in sorted(viol, key=int):
            with (m.If if first else m.Elif)(viol[rule]):
                m.d.comb += tim_code.eq(int(rule))
            first = False
        violated = tim_code != 0

        needs_data = op_is[PimOp.WR] | op_is[PimOp.WRGB]
        issue = Signal()
        drop = Signal()
        err_now = Signal()
        code_now = Signal(ERROR_CODE_BITS)
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
        gb_sel = Signal(p.column_bits)
        gcols = p.gb_columns
        m.d.comb += gb_sel.eq(Array(gb)[h_col[:max(1, (gcols - 1).bit_length())]] if gcols > 1 else gb[0])
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
        act_slots = [gb_sel[i * S:i * S + 8].as_signed() for i in range(L)]
        for b in range(NB):
            col_word = banks[b].rdata
            for i in range(L):
                code = col_word[i * S:i * S + 8]
                term = Signal(signed(acc_bits), name=f"term{b}_{i}")
                if bs is None:
                    m.d.comb += term.eq(code.as_signed() * act_slots[i])
                else:
                    # the weight's value (at most 8 bits signed for every datatype), times the activation, times
                    # the bank's group scale: two multipliers per lane
                    val = Signal(signed(8), name=f"wval{b}_{i}")
                    with m.Switch(b_dtype[b]):
                        for name, dcode in bs.dtype_codes.items():
                            dt = DATATYPES[name]
                            with m.Case(dcode):
                                if dt.kind == "int":
                                    m.d.comb += val.eq(code[:dt.code_bits].as_signed())
                                else:
                                    m.d.comb += val.eq(Array([C(v, signed(8)) for v in dt.values])
                                                       [code[:dt.code_bits]])
                    prod = Signal(signed(16), name=f"prod{b}_{i}")
                    m.d.comb += prod.eq(val * act_slots[i])
                    m.d.comb += term.eq(prod * b_scale[b])
                with m.If(issue & op_is[PimOp.MAC] & target[b]):
                    m.d.sync += acc[b][i].eq(acc[b][i] + term)
                with m.If(issue & op_is[PimOp.CLRMAC] & target[b]):
                    m.d.sync += acc[b][i].eq(0)

        # ---- state updates at the edge
        def bump(sig: Signal, n: int, when) -> None:
            with m.If(when):
                m.d.sync += sig.eq(Mux(sig > n, sig, n) - 1)
            with m.Elif(sig != 0):
                m.d.sync += sig.eq(sig - 1)

        iss = {o: issue & op_is[o] for o in PimOp}
        for b in range(NB):
            tb = target[b]
            with m.If(iss[PimOp.ACT] & tb):
                m.d.sync += b_open[b].eq(1)
            with m.If(iss[PimOp.PRE] & tb):
                m.d.sync += b_open[b].eq(0)
            with m.If(iss[PimOp.CFR] & tb & (h_col == CFR_DTYPE)):
                m.d.sync += b_dtype[b].eq(h_row)
            with m.If(iss[PimOp.CFR] & tb & (h_col == CFR_SCALE)):
                m.d.sync += b_scale[b].eq(h_row)
            act_b = iss[PimOp.ACT] & tb
            for key in ("rcd_rd", "rcd_wr", "rcd_mac", "ras", "rc"):
                bump(bc[b][key], bank_keys[key], act_b)
            bump(bc[b]["rp"], t.rp, iss[PimOp.PRE] & tb & b_open[b])
            bump(bc[b]["rtp"], t.rtp, (iss[PimOp.RD] | iss[PimOp.MAC]) & tb)
            bump(bc[b]["wr"], t.wr, iss[PimOp.WR] & tb)
            terms = Signal(range(max_terms + 1), name=f"terms{b}")
            m.d.comb += terms.eq(1)
            if bs is not None:
                with m.Switch(b_dtype[b]):
                    for name, dcode in bs.dtype_codes.items():
                        with m.Case(dcode):
                            m.d.comb += terms.eq(DATATYPES[name].terms)
            with m.If(iss[PimOp.MAC] & tb):
                m.d.sync += mac_busy[b].eq(Mux(mac_busy[b] > terms, mac_busy[b], terms) - 1)
            with m.Elif(mac_busy[b] != 0):
                m.d.sync += mac_busy[b].eq(mac_busy[b] - 1)
        col_cmd = iss[PimOp.RD] | iss[PimOp.WR] | iss[PimOp.MAC]
        for g in range(NG):
            bump(rrd_l[g], t.rrd_l, iss[PimOp.ACT] & gtarget[g])
            bump(ccd_l[g], t.ccd_l, col_cmd & gtarget[g])
        bump(rrd_s, t.rrd_s, iss[PimOp.ACT])
        bump(ccd_s, t.ccd_s, col_cmd | iss[PimOp.WRGB] | iss[PimOp.RDMAC])
        bump(ccd_ab, t.ccd_ab, iss[PimOp.MAC] & h_ab)
        bump(rfc, t.rfc, iss[PimOp.REF])
        # bus: max(bus, latency + nBL) - 1 on a read
        rd_set = t.rd_latency + t.bl
        rdm_set = t.rdmac_latency + t.bl
        with m.If(iss[PimOp.RD]):
            m.d.sync += bus.eq(Mux(bus > rd_set, bus, rd_set) - 1)
        with m.Elif(iss[PimOp.RDMAC]):
            m.d.sync += bus.eq(Mux(bus > rdm_set, bus, rdm_set) - 1)
        with m.Elif(bus != 0):
            m.d.sync += bus.eq(bus - 1)
        faw_set = iss[PimOp.ACT] & act_counted
        for i in range(4):
            bump(faw[i], t.faw, faw_set & (faw_ptr == i))
        with m.If(faw_set):
            m.d.sync += faw_ptr.eq(faw_ptr + 1)
        for i in range(gcols):
            with m.If(iss[PimOp.WRGB] & (h_col == i)):
                m.d.sync += gb[i].eq(self.wdata.payload)

        # read pipeline: shift, then insert at latency - 1
        rd_word = Signal(p.column_bits)
        m.d.comb += rd_word.eq(Array(bank_rdata)[h_bank] if NB > 1 else bank_rdata[0])
        # RDMAC beat: every lane's accumulator as a 32-bit two's complement word (sign-extended or truncated)
        acc32 = [[Signal(signed(ACC_BITS), name=f"acc32_{b}_{i}") for i in range(L)] for b in range(NB)]
        for b in range(NB):
            for i in range(L):
                m.d.comb += acc32[b][i].eq(acc[b][i])
        mac_word = Signal(L * ACC_BITS)
        words = [Cat(*acc32[b]) for b in range(NB)]
        m.d.comb += mac_word.eq(Array(words)[h_bank] if NB > 1 else words[0])
        for k in range(depth):
            nv = pipe_v[k + 1] if k + 1 < depth else Const(0)
            nd = pipe_d[k + 1] if k + 1 < depth else Const(0, rdata_bits(p))
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

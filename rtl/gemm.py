"""GEMM on the attention array's 2D PE array: output- and weight-stationary systolic engines in Amaranth.

The ``rows`` x ``cols`` array of :class:`accel.config.GemmConfig` (on a device, the PEs, data width and array shape
of :class:`accel.rtl.attention.AttentionArray`: :attr:`accel.config.AttentionConfig.gemm`) run as systolic GEMM
engines with the *native* schedules of :mod:`accel.emulator.gemm_timing`. :class:`SystolicGemm`
(output-stationary): operands enter skewed at the array's edges and move one PE per cycle, every PE keeps its output,
and a finished fold's sums leave through one of two result banks so that the next fold's operands follow at once. :class:`SystolicGemmWS` (weight-stationary): the
next fold's weights move down a load chain into shadow banks while the current fold streams; input-stationary is
this engine on the transposed problem. The exact cycle behaviour is specified in ``docs/attention.md`` ("GEMM in
RTL") and implemented identically by the per-cycle models of the same names in :mod:`accel.emulator.units.gemm`; the
stream layouts are those of :mod:`accel.interfaces.gemm`.
"""
from __future__ import annotations

from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from accel.config import GemmConfig
from accel.interfaces.gemm import ab_layout, gemm_o_layout, w_layout, ws_a_layout, ws_o_layout

__all__ = ["SystolicGemm", "SystolicGemmWS"]


def _register(m: Module, src: dict, shape: dict, name: str) -> dict:
    """A pipeline register of a bundle of named values (``shape``: name -> shape), clocked in ``m``'s sync domain."""
    out = {k: Signal(s, name=f"{name}_{k}") for k, s in shape.items()}
    m.d.sync += [out[k].eq(src[k]) for k in shape]
    return out


class SystolicGemm(wiring.Component):
    """Output-stationary systolic GEMM on the ``rows`` x ``cols`` PE array.

    Parameters
    ----------
    config:
        The array's :class:`~accel.config.GemmConfig` (``rows``, ``cols`` and ``data_bits`` are used).

    Members
    -------
    ab: In(stream.Signature(ab_layout))
        Operand beats, one per cycle at most; a fold is ``K`` beats, the last with ``last``.
    o: Out(stream.Signature(gemm_o_layout))
        One beat per fold, in fold order.
    busy: Out(1)
        A PE does a MAC in this cycle (combinational: the first beat's MAC in PE (0, 0) happens in its transfer cycle).
    error: Out(1)
        Sticky: a fold's first beat had ``rows`` or ``cols`` outside 1 .. the array size; set the cycle after it.
    """

    def __init__(self, config: GemmConfig) -> None:
        if not isinstance(config, GemmConfig):
            raise TypeError(f"config must be a GemmConfig, not {config!r}")
        self.config = config
        super().__init__({
            "ab": In(stream.Signature(ab_layout(config).layout())),
            "o": Out(stream.Signature(gemm_o_layout(config).layout())),
            "busy": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform) -> Module:
        cfg = self.config
        m = Module()
        R, Cn, D = cfg.rows, cfg.cols, cfg.data_bits
        W = cfg.acc_bits
        rw, cw = cfg.rows.bit_length(), cfg.cols.bit_length()

        # fold bookkeeping
        par = Signal()                        # bank of the next fold
        infold = Signal()                     # a fold's first beat has been taken, its last not yet
        bank_free = Signal(2, init=0b11)
        done = Signal(2)                      # the bank holds a finished fold not yet copied out
        out_ptr = Signal()                    # the bank copied out next (folds leave in order)
        fold_rows, fold_cols = Signal(rw), Signal(cw)
        bank_rows = [Signal(rw, name=f"bank_rows{p}") for p in range(2)]
        bank_cols = [Signal(cw, name=f"bank_cols{p}") for p in range(2)]
        err = Signal()

        fire = Signal()
        m.d.comb += [
            self.ab.ready.eq(infold | bank_free.bit_select(par, 1)),
            fire.eq(self.ab.valid & self.ab.ready),
            self.error.eq(err),
        ]
        pl = self.ab.payload
        first = Signal()
        rows_eff, cols_eff = Signal(rw), Signal(cw)
        m.d.comb += [
            first.eq(fire & ~infold),
            rows_eff.eq(Mux(infold, fold_rows, pl.rows)),
            cols_eff.eq(Mux(infold, fold_cols, pl.cols)),
        ]

        # operands entering the array this cycle (before the skew): value, valid, end-of-fold marks, bank tag
        def a_entry(i):
            return {"val": pl.a[i], "v": fire & (i < rows_eff), "last": pl.last,
                    "end": pl.last & (rows_eff == i + 1), "tag": par}

        def b_entry(j):
            return {"val": pl.b[j], "v": fire & (j < cols_eff), "end": cols_eff == j + 1}

        a_shape = {"val": signed(D), "v": 1, "last": 1, "end": 1, "tag": 1}
        b_shape = {"val": signed(D), "v": 1, "end": 1}

        def reg(src: dict, shape: dict, name: str) -> dict:
            return _register(m, src, shape, name)

        # skew: row i's operand reaches PE (i, 0) i cycles after its beat; column j's reaches PE (0, j) j cycles after
        a_in = [[None] * Cn for _ in range(R)]
        b_in = [[None] * Cn for _ in range(R)]
        for i in range(R):
            x = a_entry(i)
            for s in range(i):
                x = reg(x, a_shape, f"askew{i}_{s}")
            a_in[i][0] = x
        for j in range(Cn):
            x = b_entry(j)
            for s in range(j):
                x = reg(x, b_shape, f"bskew{j}_{s}")
            b_in[0][j] = x
        for i in range(R):
            for j in range(Cn):
                if j + 1 < Cn:
                    a_in[i][j + 1] = reg(a_in[i][j], a_shape, f"a_{i}_{j + 1}")
                if i + 1 < R:
                    b_in[i + 1][j] = reg(b_in[i][j], b_shape, f"b_{i + 1}_{j}")

        # PEs: accumulate; the fold's last operand writes the sum into the fold's bank and clears the accumulator
        res = [[[Signal(signed(W), name=f"res{p}_{i}_{j}") for j in range(Cn)] for i in range(R)] for p in range(2)]
        macs = []
        final = Signal(2)
        finals = [[], []]
        for i in range(R):
            for j in range(Cn):
                a, b = a_in[i][j], b_in[i][j]
                acc = Signal(signed(W), name=f"acc_{i}_{j}")
                mac = Signal(name=f"mac_{i}_{j}")
                s = Signal(signed(W), name=f"sum_{i}_{j}")
                m.d.comb += [mac.eq(a["v"] & b["v"]), s.eq(acc + a["val"] * b["val"])]
                macs.append(mac)
                with m.If(mac):
                    with m.If(a["last"]):
                        m.d.sync += acc.eq(0)
                        with m.If(a["tag"]):
                            m.d.sync += res[1][i][j].eq(s)
                        with m.Else():
                            m.d.sync += res[0][i][j].eq(s)
                    with m.Else():
                        m.d.sync += acc.eq(s)
                for p in range(2):
                    finals[p].append(mac & a["end"] & b["end"] & (a["tag"] == p))
        for p in range(2):
            m.d.comb += final[p].eq(Cat(*finals[p]).any())
        m.d.comb += self.busy.eq(Cat(*macs).any())

        # copy a finished bank into the output register, in fold order
        o_valid = Signal()
        oreg = Signal(gemm_o_layout(cfg).layout())
        m.d.comb += [self.o.valid.eq(o_valid), self.o.payload.eq(oreg)]
        copy = Signal()
        m.d.comb += copy.eq(done.bit_select(out_ptr, 1) & (~o_valid | self.o.ready))
        done_n = Signal(2)
        free_n = Signal(2)
        m.d.comb += [done_n.eq(done | final), free_n.eq(bank_free)]
        with m.If(copy):
            for p in range(2):
                with m.If(out_ptr == p):
                    m.d.sync += [oreg.rows.eq(bank_rows[p]), oreg.cols.eq(bank_cols[p])]
                    for i in range(R):
                        for j in range(Cn):
                            m.d.sync += oreg.data[i][j].eq(res[p][i][j])
            m.d.sync += [o_valid.eq(1), out_ptr.eq(~out_ptr)]
            m.d.comb += [done_n.bit_select(out_ptr, 1).eq(0), free_n.bit_select(out_ptr, 1).eq(1)]
        with m.Elif(self.o.ready):
            m.d.sync += o_valid.eq(0)

        with m.If(first):
            m.d.comb += free_n.bit_select(par, 1).eq(0)
            m.d.sync += [fold_rows.eq(pl.rows), fold_cols.eq(pl.cols)]
            for p in range(2):
                with m.If(par == p):
                    m.d.sync += [bank_rows[p].eq(pl.rows), bank_cols[p].eq(pl.cols)]
            with m.If((pl.rows == 0) | (pl.rows > R) | (pl.cols == 0) | (pl.cols > Cn)):
                m.d.sync += err.eq(1)
        with m.If(fire):
            with m.If(pl.last):
                m.d.sync += [infold.eq(0), par.eq(~par)]
            with m.Else():
                m.d.sync += infold.eq(1)
        m.d.sync += [done.eq(done_n), bank_free.eq(free_n)]
        return m


class SystolicGemmWS(wiring.Component):
    """Weight-stationary systolic GEMM on the ``rows`` x ``cols`` PE array.

    A fold holds a ``rows`` x ``cols`` tile of weights in the PEs; input rows stream in from the left, partial sums
    flow down the columns and leave at the bottom, one output row per input row. The next fold's tile is shifted down a
    load chain and latched into a shadow bank while the current fold streams.

    Members
    -------
    w: In(stream.Signature(w_layout))
        Weight tile rows, ``rows`` beats per fold (its last row first).
    a: In(stream.Signature(ws_a_layout))
        Input rows, ``M`` beats per fold, the last with ``last``.
    o: Out(stream.Signature(ws_o_layout))
        One beat per input row, in order. Backpressure on ``o`` stalls the whole array.
    busy: Out(1)
        A PE does a MAC in this cycle.
    error: Out(1)
        Sticky: a fold's first input beat had ``rows`` or ``cols`` outside 1 .. the array size.
    """

    def __init__(self, config: GemmConfig) -> None:
        if not isinstance(config, GemmConfig):
            raise TypeError(f"config must be a GemmConfig, not {config!r}")
        self.config = config
        super().__init__({
            "w": In(stream.Signature(w_layout(config).layout())),
            "a": In(stream.Signature(ws_a_layout(config).layout())),
            "o": Out(stream.Signature(ws_o_layout(config).layout())),
            "busy": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform) -> Module:
        cfg = self.config
        m = Module()
        core = Module()                       # everything but the enable: frozen while a result waits on ``o``
        R, Cn, D = cfg.rows, cfg.cols, cfg.data_bits
        W = cfg.acc_bits
        rw, cw = cfg.rows.bit_length(), cfg.cols.bit_length()

        o_valid = Signal()
        en = Signal()
        m.d.comb += en.eq(~o_valid | self.o.ready)

        infold = Signal()
        w_count = Signal(range(R))
        pending = Signal()                    # a latched weight tile waits for its fold's first input beat
        age = Signal(range(R + 1), init=R)    # cycles since the last fold's first input beat (saturating)
        fold_rows, fold_cols = Signal(rw), Signal(cw)
        err = Signal()

        a_fire, w_fire, a_first = Signal(), Signal(), Signal()
        latch_ok = Signal()
        # the tile of the fold after next may latch once the shadow bank was taken over by every row of its column:
        # R - 1 cycles after the current fold's first input beat (the same cycle when R == 1)
        ok_age = (age >= R - 2) if R >= 2 else C(1, 1)
        m.d.comb += [
            self.a.ready.eq(en & (infold | pending)),
            a_fire.eq(self.a.valid & self.a.ready),
            a_first.eq(a_fire & ~infold),
            latch_ok.eq((~pending & ok_age) | (a_first if R == 1 else C(0, 1))),
            self.w.ready.eq(en & ((w_count != R - 1) | latch_ok)),
            w_fire.eq(self.w.valid & self.w.ready),
            self.error.eq(err),
        ]
        pa, pw = self.a.payload, self.w.payload
        rows_eff, cols_eff = Signal(rw), Signal(cw)
        m.d.comb += [rows_eff.eq(Mux(infold, fold_rows, pa.rows)), cols_eff.eq(Mux(infold, fold_cols, pa.cols))]

        a_shape = {"val": signed(D), "p": 1, "v": 1, "first": 1, "last": 1, "cols": cw}
        w_shape = {"val": signed(D), "v": 1, "latch": 1}

        def reg(src: dict, shape: dict, name: str) -> dict:
            return _register(core, src, shape, name)

        # skew, as in the output-stationary array: row i's input reaches PE (i, 0) i cycles after its beat, column j's
        # weight reaches the top of column j's load chain j cycles after its beat
        a_in = [[None] * Cn for _ in range(R)]
        for i in range(R):
            x = {"val": pa.a[i], "p": a_fire, "v": a_fire & (i < rows_eff), "first": a_first, "last": pa.last,
                 "cols": cols_eff}
            for s in range(i):
                x = reg(x, a_shape, f"askew{i}_{s}")
            a_in[i][0] = x
            for j in range(1, Cn):
                a_in[i][j] = reg(a_in[i][j - 1], a_shape, f"a_{i}_{j}")
        w_top = []
        for j in range(Cn):
            x = {"val": pw[j], "v": w_fire, "latch": w_fire & (w_count == R - 1)}
            for s in range(j):
                x = reg(x, w_shape, f"wskew{j}_{s}")
            w_top.append(x)

        # weights: load chain, shadow bank, active bank
        chain = [[Signal(signed(D), name=f"chain_{i}_{j}") for j in range(Cn)] for i in range(R)]
        shadow = [[Signal(signed(D), name=f"shadow_{i}_{j}") for j in range(Cn)] for i in range(R)]
        active = [[Signal(signed(D), name=f"active_{i}_{j}") for j in range(Cn)] for i in range(R)]
        for j in range(Cn):
            t = w_top[j]
            shifted = [t["val"]] + [chain[i - 1][j] for i in range(1, R)]
            with core.If(t["v"]):
                core.d.sync += [chain[i][j].eq(shifted[i]) for i in range(R)]
                with core.If(t["latch"]):
                    core.d.sync += [shadow[i][j].eq(shifted[i]) for i in range(R)]

        # PEs: partial sums flow down; a fold's first input makes the shadow bank active as it passes
        p_out = [[Signal(signed(W), name=f"p_{i}_{j}") for j in range(Cn)] for i in range(R)]
        macs = []
        for i in range(R):
            for j in range(Cn):
                a = a_in[i][j]
                wgt = Signal(signed(D), name=f"w_{i}_{j}")
                mac = Signal(name=f"mac_{i}_{j}")
                p = Signal(signed(W), name=f"psum_{i}_{j}")
                p_in = p_out[i - 1][j] if i else C(0, signed(W))
                m.d.comb += [
                    wgt.eq(Mux(a["first"], shadow[i][j], active[i][j])),
                    mac.eq(a["v"] & (j < a["cols"])),
                    p.eq(p_in + Mux(mac, a["val"] * wgt, 0)),
                ]
                macs.append(mac)
                with core.If(a["first"]):
                    core.d.sync += active[i][j].eq(shadow[i][j])
                core.d.sync += p_out[i][j].eq(p)
        m.d.comb += self.busy.eq(en & Cat(*macs).any())

        # bottom of the array: each column's sums deskewed to the last column's, then the output register
        bot = reg({k: a_in[R - 1][Cn - 1][k] for k in ("p", "last", "cols")},
                  {"p": 1, "last": 1, "cols": cw}, "bot")
        row = []
        for j in range(Cn):
            x = p_out[R - 1][j]
            for s in range(Cn - 1 - j):
                y = Signal(signed(W), name=f"dsk{j}_{s}")
                core.d.sync += y.eq(x)
                x = y
            row.append(x)
        oreg = Signal(ws_o_layout(cfg).layout())
        m.d.comb += [self.o.valid.eq(o_valid), self.o.payload.eq(oreg)]
        core.d.sync += o_valid.eq(bot["p"])
        with core.If(bot["p"]):
            core.d.sync += [oreg.data[j].eq(row[j]) for j in range(Cn)]
            core.d.sync += [oreg.cols.eq(bot["cols"]), oreg.last.eq(bot["last"])]

        # fold bookkeeping
        with core.If(a_first):
            core.d.sync += [fold_rows.eq(pa.rows), fold_cols.eq(pa.cols), age.eq(0)]
            with core.If((pa.rows == 0) | (pa.rows > R) | (pa.cols == 0) | (pa.cols > Cn)):
                core.d.sync += err.eq(1)
        with core.Elif(age < R):
            core.d.sync += age.eq(age + 1)
        with core.If(a_fire):
            core.d.sync += infold.eq(~pa.last)
        with core.If(a_first):
            core.d.sync += pending.eq(0)
        with core.If(w_fire):
            core.d.sync += w_count.eq(Mux(w_count == R - 1, 0, w_count + 1))
            with core.If(w_count == R - 1):
                core.d.sync += pending.eq(1)
        m.submodules.core = EnableInserter(en)(core)
        return m

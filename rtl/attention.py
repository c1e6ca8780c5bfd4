"""The spatial attention array (after FuseMax) in Amaranth: the ``AttentionArray`` component.

A ``rows`` x ``cols`` 2D array of PEs (keys of a chunk on the rows, queries on the columns, the head dimension looped
in time) plus a 1D array of ``cols`` PEs (one per query). Each PE keeps its score from QK through the V product. The
exact cycle behaviour is specified in ``docs/attention.md`` and implemented identically by
``emulator/units/attention.py``; the stream layouts and the mode/phase/state codes are those of
:mod:`accel.interfaces.attention`.
"""
from __future__ import annotations

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.config import AttentionConfig
from accel.interfaces.attention import (DIV, FREE, IDLE, LOADQ, OUT, POS_BITS, QK, RUN, SLN, SM0, SM1, V, k_layout,
                                        keys_bits, o_layout, q_layout, shift_bits, v_layout)
from accel.numerics import attn_format, exp2_table

__all__ = ["AttentionArray"]


class AttentionArray(wiring.Component):
    """Spatial attention array: a ``rows`` x ``cols`` 2D PE array and a ``cols``-PE 1D array.

    Parameters
    ----------
    config:
        The array's :class:`~accel.config.AttentionConfig`.

    Members
    -------
    q: In(stream.Signature(q_layout))
        Q tile, one head dimension per beat.
    k: In(stream.Signature(k_layout))
        K chunks, one head dimension per beat.
    v: In(stream.Signature(v_layout))
        V chunks, one head dimension per beat.
    o: Out(stream.Signature(o_layout))
        O tile, one head dimension per beat.
    error: Out(1)
        Sticky: a beat broke the contract (Q tile longer than ``head_dim``, ``shift`` beyond the score width, a chunk
        with 0 or more than ``rows`` keys); set the cycle after its transfer.
    """

    def __init__(self, config: AttentionConfig) -> None:
        if not isinstance(config, AttentionConfig):
            raise TypeError(f"config must be an AttentionConfig, not {config!r}")
        self.config = config
        self.fmt = attn_format(config)
        super().__init__({
            "q": In(stream.Signature(q_layout(config).layout())),
            "k": In(stream.Signature(k_layout(config).layout())),
            "v": In(stream.Signature(v_layout(config).layout())),
            "o": Out(stream.Signature(o_layout(config).layout())),
            "error": Out(1),
        })

    def _exp2(self, m: Module, t: Value, shift: Value, name: str) -> Signal:
        """``exp2_neg``: ``2**(-t / 2**shift)`` with ``P`` fraction bits, for ``t >= 0``."""
        f = self.fmt
        E, P = f.exp_table_bits, f.prob_frac_bits
        tt = Signal(unsigned(len(t) + 1), name=f"{name}_t")
        m.d.comb += tt.eq(t)
        rsh = Signal(range(f.max_score_frac_bits + 1), name=f"{name}_rsh")
        lsh = Signal(range(E + 1), name=f"{name}_lsh")
        m.d.comb += [rsh.eq(Mux(shift > E, shift - E, 0)), lsh.eq(Mux(shift > E, 0, E - shift))]
        rsh1 = Signal(range(f.max_score_frac_bits + 1), name=f"{name}_rsh1")
        m.d.comb += rsh1.eq(Mux(shift > E, shift - E - 1, 0))
        rnd = Signal(len(tt), name=f"{name}_rnd")
        m.d.comb += rnd.eq(Mux(shift > E, C(1, len(tt)) << rsh1, 0))
        u = Signal(len(tt) + E + 1, name=f"{name}_u")
        m.d.comb += u.eq(Mux(shift > E, (tt + rnd) >> rsh, tt << lsh))
        table = Array(C(x, P + 1) for x in exp2_table(E, P))
        whole = Signal(len(u), name=f"{name}_whole")
        m.d.comb += whole.eq(u >> E)
        out = Signal(P + 1, name=name)
        m.d.comb += out.eq(Mux(whole > P, 0, table[u[:E] if E else C(0, 1)] >> whole[:max(1, P.bit_length() + 1)]))
        return out

    def elaborate(self, platform) -> Module:
        cfg, f = self.config, self.fmt
        m = Module()
        R, Cn, H = cfg.rows, cfg.cols, cfg.head_dim
        P, G = f.prob_frac_bits, f.out_frac_bits
        sb = f.score_bits
        srb = max(sb, P + 2)

        mode = Signal(2)
        phase = Signal(2)
        e = Signal(range(H + 1))
        qe = Signal(range(H + 1))
        d = Signal(range(H + 1))
        shift = Signal(shift_bits(cfg))
        causal = Signal()
        qpos = Signal(POS_BITS)
        qbuf = [Signal(data.ArrayLayout(signed(cfg.data_bits), Cn), name=f"qbuf{x}") for x in range(H)]
        acc = [[Signal(signed(sb), name=f"acc_{i}_{j}") for j in range(Cn)] for i in range(R)]
        acc_full = Signal()
        am_keys, am_pos, am_last = Signal(keys_bits(cfg)), Signal(POS_BITS), Signal()
        sreg = [[Signal(signed(srb), name=f"sreg_{i}_{j}") for j in range(Cn)] for i in range(R)]
        sstate = Signal(2)
        sm_keys, sm_pos = Signal(keys_bits(cfg)), Signal(POS_BITS)
        seen_last = Signal()
        valid = [Signal(name=f"valid{j}") for j in range(Cn)]
        rm = [Signal(signed(sb), name=f"rm{j}") for j in range(Cn)]
        prm = [Signal(P + 1, name=f"prm{j}") for j in range(Cn)]
        vmode = [Signal(2, name=f"vmode{j}") for j in range(Cn)]
        rd = [Signal(f.rd_bits, name=f"rd{j}") for j in range(Cn)]
        rnv = [Signal(data.ArrayLayout(signed(f.rnv_bits), Cn), name=f"rnv{x}") for x in range(H)]
        recip = [Signal(f.recip_bits, name=f"recip{j}") for j in range(Cn)]
        osh_w = 2 * P + 1 + f.rd_bits
        osh = [Signal(range(osh_w + 1), name=f"osh{j}") for j in range(Cn)]
        oe = Signal(range(H + 1))
        err = Signal()

        # ---- handshakes
        q_fire, k_fire, v_fire = Signal(), Signal(), Signal()
        m.d.comb += [
            self.q.ready.eq(mode == LOADQ),
            self.k.ready.eq((mode == RUN) & (phase == QK)),
            self.v.ready.eq((mode == RUN) & (phase == V)),
            self.o.valid.eq(mode == OUT),
            q_fire.eq(self.q.valid & self.q.ready),
            k_fire.eq(self.k.valid & self.k.ready),
            v_fire.eq(self.v.valid & self.v.ready),
            self.error.eq(err),
        ]

        # ---- O tile: (RNV * recip) >> osh as each beat leaves
        rnv_out = Array(rnv)[oe]
        for j in range(Cn):
            prod = Signal(signed(f.rnv_bits + f.recip_bits + 1), name=f"oprod{j}")
            m.d.comb += prod.eq(rnv_out[j] * recip[j])
            m.d.comb += self.o.payload.data[j].eq(Mux(mode == OUT, prod >> osh[j], 0))
        m.d.comb += self.o.payload.last.eq((mode == OUT) & (oe == d - 1))

        # ---- masks of the chunk in sreg
        allowed = [[Signal(name=f"allow_{i}_{j}") for j in range(Cn)] for i in range(R)]
        for i in range(R):
            for j in range(Cn):
                m.d.comb += allowed[i][j].eq((i < sm_keys) & (~causal | (sm_pos + i <= qpos + j)))

        # ---- SM0: column max, running max, PRM (1D)
        lm = [Signal(signed(sb), name=f"lm{j}") for j in range(Cn)]
        any_key = [Signal(name=f"any{j}") for j in range(Cn)]
        rm_new = [Signal(signed(sb), name=f"rm_new{j}") for j in range(Cn)]
        prm_new = []
        for j in range(Cn):
            cur, seen = C(0, signed(sb)), C(0, 1)
            for i in range(R):
                s = sreg[i][j][:sb].as_signed()
                take = allowed[i][j] & (~seen | (s > cur))
                cur = Mux(take, s, cur)
                seen = seen | allowed[i][j]
            upd = Signal(name=f"upd{j}")
            m.d.comb += [lm[j].eq(cur), any_key[j].eq(seen), upd.eq(seen & valid[j])]
            m.d.comb += rm_new[j].eq(Mux(upd, Mux(lm[j] > rm[j], lm[j], rm[j]), Mux(seen, lm[j], rm[j])))
            dif = Signal(sb + 1, name=f"prm_dif{j}")
            m.d.comb += dif.eq(Mux(upd, rm_new[j] - rm[j], 0))
            prm_new.append(self._exp2(m, dif, shift, f"prm_new{j}"))

        # ---- SM1: SLN = exp2(s - RM) in every PE, column sums SLD
        sln = [[None] * Cn for _ in range(R)]
        for i in range(R):
            for j in range(Cn):
                dif = Signal(sb + 1, name=f"sln_dif_{i}_{j}")
                m.d.comb += dif.eq(Mux(allowed[i][j], rm[j] - sreg[i][j][:sb].as_signed(), 0))
                x = self._exp2(m, dif, shift, f"sln_{i}_{j}")
                y = Signal(P + 1, name=f"slnm_{i}_{j}")
                m.d.comb += y.eq(Mux(allowed[i][j], x, 0))
                sln[i][j] = y
        sld = [Signal(P + 1 + R.bit_length(), name=f"sld{j}") for j in range(Cn)]
        for j in range(Cn):
            m.d.comb += sld[j].eq(sum(sln[i][j] for i in range(R)))

        # ---- QK: one K beat per cycle
        kb = self.k.payload
        acc_next = [[Signal(signed(sb), name=f"accn_{i}_{j}") for j in range(Cn)] for i in range(R)]
        qrow = Array(qbuf)[e]
        for i in range(R):
            for j in range(Cn):
                m.d.comb += acc_next[i][j].eq(Mux(k_fire, acc[i][j] + kb.data[i] * qrow[j], acc[i][j]))
        first_beat = Signal()
        m.d.comb += first_beat.eq(e == 0)
        meta_keys, meta_pos, meta_last = Signal.like(am_keys), Signal.like(am_pos), Signal()
        m.d.comb += [
            meta_keys.eq(Mux(k_fire & first_beat, kb.keys, am_keys)),
            meta_pos.eq(Mux(k_fire & first_beat, kb.pos, am_pos)),
            meta_last.eq(Mux(k_fire & first_beat, kb.last, am_last)),
        ]
        qk_end = Signal()
        m.d.comb += qk_end.eq(k_fire & (e + 1 == d))
        v_end = Signal()
        m.d.comb += v_end.eq(v_fire & (e + 1 == d))

        # next-state values the move and the phase choice look at
        sstate_n = Signal(2)
        acc_full_n = Signal()
        seen_last_n = Signal()
        phase_n = Signal(2)
        m.d.comb += [
            sstate_n.eq(Mux(sstate == SM0, SM1, Mux(sstate == SM1, SLN, Mux(v_end, FREE, sstate)))),
            acc_full_n.eq(acc_full | qk_end),
            seen_last_n.eq(seen_last | (qk_end & meta_last)),
            phase_n.eq(Mux(qk_end | v_end, IDLE, phase)),
        ]
        move = Signal()
        m.d.comb += move.eq(acc_full_n & (sstate_n == FREE))
        sstate_f = Signal(2)
        acc_full_f = Signal()
        m.d.comb += [sstate_f.eq(Mux(move, SM0, sstate_n)), acc_full_f.eq(acc_full_n & ~move)]

        # ---- V: one V beat per cycle, SLNV per column, RNV update in the 1D array
        vb = self.v.payload
        rnv_cur = Array(rnv)[e]
        rnv_new = [Signal(signed(f.rnv_bits), name=f"rnv_new{j}") for j in range(Cn)]
        for j in range(Cn):
            slnv = Signal(signed(f.rnv_bits), name=f"slnv{j}")
            m.d.comb += slnv.eq(sum(sreg[i][j][:P + 1] * vb[i] for i in range(R)))
            scaled = Signal(signed(f.rnv_bits + P + 2), name=f"rnv_scaled{j}")
            m.d.comb += scaled.eq(rnv_cur[j] * prm[j])
            m.d.comb += rnv_new[j].eq(Mux(vmode[j] == 2, (scaled >> P) + slnv,
                                          Mux(vmode[j] == 1, slnv, rnv_cur[j])))

        with m.Switch(mode):
            with m.Case(LOADQ):
                with m.If(q_fire):
                    qb = self.q.payload
                    with m.Switch(qe):
                        for x in range(H):
                            with m.Case(x):
                                m.d.sync += qbuf[x].eq(qb.data)
                    with m.If(qb.last):
                        with m.If(qb.shift > f.max_score_frac_bits):
                            m.d.sync += err.eq(1)
                        m.d.sync += [d.eq(qe + 1), shift.eq(qb.shift), causal.eq(qb.causal), qpos.eq(qb.pos),
                                     qe.eq(0), mode.eq(RUN), phase.eq(QK), e.eq(0)]
                    with m.Elif(qe + 1 >= H):
                        m.d.sync += err.eq(1)
                    with m.Else():
                        m.d.sync += qe.eq(qe + 1)
            with m.Case(RUN):
                with m.If(sstate == SM0):
                    for j in range(Cn):
                        m.d.sync += [prm[j].eq(prm_new[j]), rm[j].eq(rm_new[j]),
                                     vmode[j].eq(Mux(any_key[j], Mux(valid[j], 2, 1), 0))]
                with m.Elif(sstate == SM1):
                    for j in range(Cn):
                        scaled_rd = Signal(f.rd_bits + P + 1, name=f"rd_scaled{j}")
                        m.d.comb += scaled_rd.eq(rd[j] * prm[j])
                        m.d.sync += [
                            rd[j].eq(Mux(vmode[j] == 2, (scaled_rd >> P) + sld[j],
                                         Mux(vmode[j] == 1, sld[j], rd[j]))),
                            valid[j].eq(valid[j] | (vmode[j] != 0)),
                        ]
                    for i in range(R):
                        for j in range(Cn):
                            m.d.sync += sreg[i][j].eq(sln[i][j])
                with m.If(k_fire):
                    with m.If(first_beat & ((kb.keys == 0) | (kb.keys > R))):
                        m.d.sync += err.eq(1)
                    m.d.sync += [am_keys.eq(meta_keys), am_pos.eq(meta_pos), am_last.eq(meta_last),
                                 e.eq(Mux(qk_end, 0, e + 1))]
                with m.If(v_fire):
                    with m.Switch(e):
                        for x in range(H):
                            with m.Case(x):
                                for j in range(Cn):
                                    m.d.sync += rnv[x][j].eq(rnv_new[j])
                    m.d.sync += e.eq(Mux(v_end, 0, e + 1))
                for i in range(R):
                    for j in range(Cn):
                        m.d.sync += acc[i][j].eq(Mux(move, 0, acc_next[i][j]))
                with m.If(move):
                    for i in range(R):
                        for j in range(Cn):
                            m.d.sync += sreg[i][j].eq(acc_next[i][j])
                    m.d.sync += [sm_keys.eq(meta_keys), sm_pos.eq(meta_pos)]
                m.d.sync += [sstate.eq(sstate_f), acc_full.eq(acc_full_f), seen_last.eq(seen_last_n),
                             phase.eq(phase_n)]
                with m.If(phase_n == IDLE):
                    with m.If(sstate_f == SLN):
                        m.d.sync += phase.eq(V)
                    with m.Elif(~acc_full_f & ~seen_last_n):
                        m.d.sync += phase.eq(QK)
                    with m.Elif(seen_last_n & ~acc_full_f & (sstate_f == FREE)):
                        m.d.sync += mode.eq(DIV)
            with m.Case(DIV):
                for j in range(Cn):
                    # normalise RD to P + 1 bits (z = bit length - (P + 1)), one reciprocal per query
                    z = Signal(range(f.rd_bits + 1), name=f"z{j}")
                    zc = C(0, len(z))
                    for b in range(P + 1, f.rd_bits):
                        zc = Mux(rd[j][b], b - P, zc)
                    m.d.comb += z.eq(zc)
                    rdn = Signal(P + 1, name=f"rdn{j}")
                    m.d.comb += rdn.eq(rd[j] >> z)
                    with m.If(valid[j]):
                        m.d.sync += [recip[j].eq(C(1 << (2 * P + 1), 2 * P + 2) // rdn),
                                     osh[j].eq(2 * P + 1 - G + z)]
                    with m.Else():
                        m.d.sync += [recip[j].eq(0), osh[j].eq(0)]
                m.d.sync += [mode.eq(OUT), oe.eq(0)]
            with m.Case(OUT):
                with m.If(self.o.ready):
                    with m.If(oe + 1 == d):
                        m.d.sync += [mode.eq(LOADQ), oe.eq(0), phase.eq(IDLE), e.eq(0), seen_last.eq(0),
                                     acc_full.eq(0), sstate.eq(FREE)]
                        m.d.sync += [x.eq(0) for x in valid]
                    with m.Else():
                        m.d.sync += oe.eq(oe + 1)
        return m

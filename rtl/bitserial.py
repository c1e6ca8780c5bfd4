"""The bit-serial MAC unit (after BitMoD) in Amaranth.

One weight beat carries ``lanes`` weight codes plus the group's datatype, scale and a ``last`` flag; one activation
beat carries ``lanes`` signed activations. The MAC stage takes one signed power-of-two term of every lane's weight
per cycle (so a beat takes as many cycles as its datatype has terms) and accumulates ``sum(±(a << shift))`` into the
group's partial sum. When a group's last term is done, the partial sum is handed to the bit-serial dequantiser, which
multiplies it by the group scale MSB first (one cycle per scale bit) and adds it to the result while the MAC stage
works on the next group. The result of a dot product (``last`` set on its final group) leaves on the ``res`` stream.

The exact cycle behaviour is specified in ``docs/bitserial.md`` and implemented identically by
``emulator/units/bitserial.py``; ``tests/test_equivalence.py`` checks them against each other cycle for
cycle under Amaranth's simulator, Icarus and Verilator.
"""
from __future__ import annotations

from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from accel.config import BitSerialConfig
from accel.interfaces.bitserial import act_layout, res_layout, wgt_layout
from accel.numerics import DATATYPES

__all__ = ["BitSerialUnit"]


class BitSerialUnit(wiring.Component):
    """Bit-serial MAC unit.

    Parameters
    ----------
    config:
        The unit's :class:`~accel.config.BitSerialConfig`.

    Members
    -------
    act: In(stream.Signature(act_layout(config).layout()))
        Activation beats (:func:`accel.interfaces.bitserial.act_layout`).
    wgt: In(stream.Signature(wgt_layout(config).layout()))
        Weight beats with per-group metadata. A beat transfers together with an activation beat (both valid).
    res: Out(stream.Signature(res_layout(config).layout()))
        Dot-product results.
    error: Out(1)
        Sticky: a weight beat named a datatype the unit was not built for (set the cycle after its transfer).
    """

    def __init__(self, config: BitSerialConfig) -> None:
        if not isinstance(config, BitSerialConfig):
            raise TypeError(f"config must be a BitSerialConfig, not {config!r}")
        self.config = config
        super().__init__({
            "act": In(stream.Signature(act_layout(config).layout())),
            "wgt": In(stream.Signature(wgt_layout(config).layout())),
            "res": Out(stream.Signature(res_layout(config).layout())),
            "error": Out(1),
        })

    def elaborate(self, platform) -> Module:
        cfg = self.config
        m = Module()
        lanes, acc_bits, sbits = cfg.lanes, cfg.acc_bits, cfg.scale_bits
        nterms, bpg = cfg.max_terms, cfg.beats_per_group
        top_shift = cfg.max_shift

        # MAC stage: the beat being worked on
        m_busy = Signal()
        m_term = Signal(range(max(nterms, 2)))
        m_beat = Signal(range(max(bpg, 2)))
        m_acts = Signal(act_layout(cfg).layout())
        m_wgt = Signal(wgt_layout(cfg).layout())
        m_psum = Signal(signed(acc_bits))
        # dequantiser
        d_busy = Signal()
        d_bit = Signal(range(max(sbits, 2)))
        d_psum = Signal(signed(acc_bits))
        d_scale = Signal(sbits)
        d_last = Signal()
        d_r = Signal(signed(acc_bits))
        acc = Signal(signed(acc_bits))
        # result register
        o_valid = Signal()
        o_data = Signal(signed(acc_bits))
        err = Signal()

        # ---- term decode: (negative, shift, zero) of each lane's weight for term m_term
        n_terms_cur = Signal(range(nterms + 1))
        neg = [Signal(name=f"neg{i}") for i in range(lanes)]
        shift = [Signal(range(top_shift + 1), name=f"shift{i}") for i in range(lanes)]
        zero = [Signal(name=f"zero{i}") for i in range(lanes)]
        m.d.comb += n_terms_cur.eq(1)
        for i in range(lanes):
            m.d.comb += zero[i].eq(1)
        with m.Switch(m_wgt.dtype):
            for name in cfg.datatypes:
                dt = DATATYPES[name]
                with m.Case(cfg.dtype_codes[name]):
                    m.d.comb += n_terms_cur.eq(dt.terms)
                    for i in range(lanes):
                        code = m_wgt.codes[i][:dt.code_bits]
                        if dt.kind == "int":
                            self._booth(m, code, m_term, dt.code_bits, neg[i], shift[i], zero[i])
                        else:
                            self._table(m, code, m_term, dt, neg[i], shift[i], zero[i])

        products = []
        for i in range(lanes):
            a = m_acts[i]
            mag = Signal(signed(cfg.act_bits + top_shift + 1), name=f"mag{i}")
            prod = Signal(signed(cfg.act_bits + top_shift + 2), name=f"prod{i}")
            m.d.comb += mag.eq(a << shift[i])
            m.d.comb += prod.eq(Mux(zero[i], 0, Mux(neg[i], -mag, mag)))
            products.append(prod)
        contrib = Signal(signed(acc_bits))
        m.d.comb += contrib.eq(sum(products))
        psum_next = Signal(signed(acc_bits))
        m.d.comb += psum_next.eq(m_psum + contrib)

        beat_end = Signal()
        group_end = Signal()
        handoff = Signal()
        m_adv = Signal()
        load_ok = Signal()
        load = Signal()
        m.d.comb += [
            beat_end.eq(m_busy & (m_term == n_terms_cur - 1)),
            group_end.eq(beat_end & (m_beat == bpg - 1)),
            handoff.eq(group_end & ~d_busy),
            m_adv.eq(m_busy & (~group_end | handoff)),
            load_ok.eq(~m_busy | (beat_end & m_adv)),
            self.act.ready.eq(load_ok & self.wgt.valid),
            self.wgt.ready.eq(load_ok & self.act.valid),
            load.eq(load_ok & self.act.valid & self.wgt.valid),
        ]

        with m.If(m_adv):
            with m.If(beat_end):
                m.d.sync += m_term.eq(0)
                with m.If(group_end):
                    m.d.sync += [m_beat.eq(0), m_psum.eq(0)]
                with m.Else():
                    m.d.sync += [m_beat.eq(m_beat + 1), m_psum.eq(psum_next)]
                with m.If(~load):
                    m.d.sync += m_busy.eq(0)
            with m.Else():
                m.d.sync += [m_term.eq(m_term + 1), m_psum.eq(psum_next)]
        with m.If(load):
            m.d.sync += [m_busy.eq(1), m_acts.eq(self.act.payload), m_wgt.eq(self.wgt.payload)]
            with m.If(~self._built(self.wgt.payload.dtype)):
                m.d.sync += err.eq(1)

        # ---- dequantiser: r = (r << 1) + (psum if scale bit), MSB first, then acc += r
        dq_final = Signal()
        out_free = Signal()
        dq_adv = Signal()
        r_next = Signal(signed(acc_bits))
        acc_next = Signal(signed(acc_bits))
        m.d.comb += [
            dq_final.eq(d_busy & (d_bit == 0)),
            out_free.eq(~o_valid | self.res.ready),
            dq_adv.eq(d_busy & (~dq_final | ~d_last | out_free)),
            r_next.eq((d_r << 1) + Mux(d_scale.bit_select(d_bit, 1), d_psum, 0)),
            acc_next.eq(acc + r_next),
        ]
        with m.If(handoff):
            m.d.sync += [d_busy.eq(1), d_bit.eq(sbits - 1), d_psum.eq(psum_next), d_scale.eq(m_wgt.scale),
                         d_last.eq(m_wgt.last), d_r.eq(0)]
        with m.If(o_valid & self.res.ready):
            m.d.sync += o_valid.eq(0)
        with m.If(dq_adv):
            with m.If(dq_final):
                m.d.sync += d_busy.eq(0)
                with m.If(d_last):
                    m.d.sync += [o_valid.eq(1), o_data.eq(acc_next), acc.eq(0)]
                with m.Else():
                    m.d.sync += acc.eq(acc_next)
            with m.Else():
                m.d.sync += [d_r.eq(r_next), d_bit.eq(d_bit - 1)]

        m.d.comb += [self.res.valid.eq(o_valid), self.res.payload.eq(o_data), self.error.eq(err)]
        return m

    def _built(self, dtype: Value) -> Value:
        return Cat(*(dtype == c for c in self.config.dtype_codes.values())).any()

    @staticmethod
    def _booth(m: Module, code: Value, term: Value, bits: int, neg: Signal, shift: Signal, zero: Signal) -> None:
        """Radix-4 Booth digit ``term`` of a two's complement ``code`` as (negative, shift, zero)."""
        n = (bits + 1) // 2
        u = Cat(code, code[-1].replicate(2 * n - bits))  # sign-extend to an even width
        with m.Switch(term):
            for i in range(n):
                with m.Case(i):
                    b1, b0 = u[2 * i + 1], u[2 * i]
                    prev = u[2 * i - 1] if i else C(0, 1)
                    m.d.comb += [
                        zero.eq((b1 & b0 & prev) | (~b1 & ~b0 & ~prev)),
                        neg.eq(b1 & ~(b0 & prev)),
                        shift.eq(2 * i + ((b1 & ~b0 & ~prev) | (~b1 & b0 & prev))),
                    ]

    @staticmethod
    def _table(m: Module, code: Value, term: Value, dt, neg: Signal, shift: Signal, zero: Signal) -> None:
        """Terms of an FP datatype from its table (at most two powers of two per value)."""
        with m.Switch(Cat(code, term)):
            for c, terms in enumerate(dt.term_table):
                for t, tm in enumerate(terms):
                    with m.Case(c | (t << dt.code_bits)):
                        m.d.comb += [zero.eq(int(tm.zero)), neg.eq(int(tm.negative)), shift.eq(tm.shift)]

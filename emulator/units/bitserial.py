"""Per-cycle model of the bit-serial MAC unit, and its closed-form latency.

Same ports as :class:`accel.rtl.bitserial.BitSerialUnit` (see :mod:`accel.interfaces.stimulus` for the contract) and the
same cycle behaviour, written as the specification in ``docs/bitserial.md`` reads: registered state, this cycle's
combinational outputs, then the next state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from accel.config import BITSERIAL_DATATYPES, BitSerialConfig
from accel.errors import StimulusError
from accel.interfaces.bitserial import act_layout, wgt_layout
from accel.interfaces.packing import Packer
from accel.interfaces.stimulus import Stimulus, run_model
from accel.numerics import DATATYPES, wrap

__all__ = ["BitSerialUnit", "result_cycles", "stream_cycles", "run_dot"]


class BitSerialUnit:
    """Per-cycle model of the bit-serial unit: ``reset()``, ``step(inputs) -> outputs``.

    Raises :class:`~accel.errors.StimulusError` in the cycle a weight beat with a datatype the unit was not built
    for is transferred (the RTL raises its ``error`` flag one cycle later, when the beat is in its registers).
    """

    def __init__(self, config: BitSerialConfig) -> None:
        self.config = config
        self._act = Packer(act_layout(config))
        self._wgt = Packer(wgt_layout(config))
        self._acc_mask = (1 << config.acc_bits) - 1
        # coef[dtype_code][code][term] = the term as a signed power-of-two coefficient (0 for a zero term)
        self._coef: dict[int, list[list[int]]] = {}
        self._nterms: dict[int, int] = {}
        for name, code in config.dtype_codes.items():
            dt = DATATYPES[name]
            table = [[0 if t.zero else (-(1 << t.shift) if t.negative else (1 << t.shift)) for t in terms]
                     for terms in dt.term_table]
            # codes wider than the datatype: the RTL uses only the low code_bits bits
            full = [table[c & ((1 << dt.code_bits) - 1)] for c in range(1 << config.max_weight_bits)]
            self._coef[code] = full
            self._nterms[code] = dt.terms
        self.reset()

    def reset(self) -> None:
        self.m_busy = 0
        self.m_term = 0
        self.m_beat = 0
        self.m_acts: list[int] = [0] * self.config.lanes
        self.m_codes: list[int] = [0] * self.config.lanes
        self.m_dtype = 0
        self.m_scale = 0
        self.m_last = 0
        self.m_psum = 0
        self.d_busy = 0
        self.d_bit = 0
        self.d_psum = 0
        self.d_scale = 0
        self.d_last = 0
        self.d_r = 0
        self.acc = 0
        self.o_valid = 0
        self.o_data = 0
        self.error = 0

    def _wrap(self, v: int) -> int:
        return wrap(v, self.config.acc_bits)

    def step(self, inputs: dict[str, int]) -> dict[str, int]:
        cfg = self.config
        act_valid = inputs["act__valid"]
        wgt_valid = inputs["wgt__valid"]
        res_ready = inputs["res__ready"]

        # ---- combinational
        built = self.m_dtype in self._nterms
        nterms = self._nterms[self.m_dtype] if built else 1
        if self.m_busy and built:
            coef = self._coef[self.m_dtype]
            t = self.m_term
            contrib = sum(coef[c][t] * a for c, a in zip(self.m_codes, self.m_acts))
        else:
            contrib = 0
        psum_next = self._wrap(self.m_psum + contrib)
        beat_end = self.m_busy and self.m_term == nterms - 1
        group_end = beat_end and self.m_beat == cfg.beats_per_group - 1
        handoff = group_end and not self.d_busy
        m_adv = self.m_busy and (not group_end or handoff)
        load_ok = (not self.m_busy) or (beat_end and m_adv)
        load = load_ok and act_valid and wgt_valid

        dq_final = self.d_busy and self.d_bit == 0
        out_free = (not self.o_valid) or res_ready
        dq_adv = self.d_busy and (not dq_final or not self.d_last or out_free)
        scale_bit = (self.d_scale >> self.d_bit) & 1
        r_next = self._wrap((self.d_r << 1) + (self.d_psum if scale_bit else 0))
        acc_next = self._wrap(self.acc + r_next)

        outs = {
            "act__ready": int(load_ok and wgt_valid),
            "wgt__ready": int(load_ok and act_valid),
            "res__valid": self.o_valid,
            "res__payload": self.o_data & self._acc_mask,
            "error": self.error,
        }

        # ---- next state
        if load:
            w = self._wgt.unpack(inputs["wgt__payload"])
            if w["dtype"] not in self._nterms:
                name = BITSERIAL_DATATYPES[w["dtype"]] if w["dtype"] < len(BITSERIAL_DATATYPES) else "none"
                raise StimulusError(
                    f"weight beat with dtype code {w['dtype']} ({name}): this unit is built for "
                    f"{', '.join(f'{n} ({c})' for n, c in cfg.dtype_codes.items())}; rebuild it with that "
                    f"datatype in BitSerialConfig.datatypes or quantise the group to a built one")
        d_load = (self.d_psum, self.d_scale, self.d_last)
        if handoff:
            d_load = (psum_next, self.m_scale, self.m_last)
        if m_adv:
            if beat_end:
                self.m_term = 0
                if group_end:
                    self.m_beat = 0
                    self.m_psum = 0
                else:
                    self.m_beat += 1
                    self.m_psum = psum_next
                if not load:
                    self.m_busy = 0
            else:
                self.m_term += 1
                self.m_psum = psum_next
        if load:
            self.m_busy = 1
            self.m_acts = self._act.unpack(inputs["act__payload"])
            self.m_codes = w["codes"]
            self.m_dtype = w["dtype"]
            self.m_scale = w["scale"]
            self.m_last = w["last"]

        if self.o_valid and res_ready:
            self.o_valid = 0
        if dq_adv:
            if dq_final:
                self.d_busy = 0
                if self.d_last:
                    self.o_valid = 1
                    self.o_data = acc_next
                    self.acc = 0
                else:
                    self.acc = acc_next
            else:
                self.d_r = r_next
                self.d_bit -= 1
        if handoff:
            self.d_busy = 1
            self.d_bit = cfg.scale_bits - 1
            self.d_psum, self.d_scale, self.d_last = d_load
            self.d_r = 0
        return outs


@dataclass(frozen=True)
class _Group:
    dtype: str
    last: bool


def result_cycles(config: BitSerialConfig, dtypes: Sequence[str], lasts: Sequence[bool]) -> list[int]:
    """Closed-form cycle index (from the first cycle after reset) at which each result transfers.

    Assumes every input beat is offered as soon as the unit can take it and ``res.ready`` is always high. With
    ``C_g = beats_per_group * terms(dtype_g)`` and ``S = scale_bits``, group ``g`` hands its partial sum to the
    dequantiser at ``h_0 = C_0`` and ``h_g = h_{g-1} + max(C_g, S + 1)``; a result whose last group handed off at
    ``h`` transfers at ``h + S + 1``.
    """
    if len(dtypes) != len(lasts):
        raise ValueError("dtypes and lasts must have the same length")
    s = config.scale_bits
    out, h = [], None
    for dt, last in zip(dtypes, lasts):
        c = config.cycles_per_group(dt)
        h = c if h is None else h + max(c, s + 1)
        if last:
            out.append(h + s + 1)
    return out


def stream_cycles(config: BitSerialConfig, dtypes: Sequence[str], lasts: Sequence[bool]) -> int:
    """Cycles from reset to the transfer of the last result, inclusive (closed form, see :func:`result_cycles`)."""
    cycles = result_cycles(config, dtypes, lasts)
    return cycles[-1] + 1 if cycles else 0


def run_dot(config: BitSerialConfig, acts: Sequence[int], codes: Sequence[int], dtypes: Sequence[str],
            scales: Sequence[int]) -> tuple[int, int]:
    """One dot product through the per-cycle model: ``(result, cycles)``, ``cycles`` counted from reset to the
    result's transfer, inclusive. Inputs are checked first; each violation is a :class:`StimulusError` naming the
    value, the rule and the fix."""
    import numpy as np

    cfg = config
    acts = np.asarray(acts, dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    n = len(dtypes) * cfg.group_size
    if len(scales) != len(dtypes):
        raise StimulusError(f"{len(scales)} scales for {len(dtypes)} groups: give one scale per group")
    if acts.shape != (n,) or codes.shape != (n,):
        raise StimulusError(f"activations {acts.shape} and codes {codes.shape} must both hold {n} elements "
                            f"({len(dtypes)} groups of group_size {cfg.group_size})")
    lo, hi = -(1 << (cfg.act_bits - 1)), (1 << (cfg.act_bits - 1)) - 1
    bad = np.flatnonzero((acts < lo) | (acts > hi))
    if bad.size:
        raise StimulusError(f"activation[{bad[0]}] = {acts[bad[0]]} is outside int{cfg.act_bits} ({lo}..{hi}); "
                            f"quantise activations to act_bits = {cfg.act_bits} first")
    for g, (dt, sc) in enumerate(zip(dtypes, scales)):
        if dt not in cfg.dtype_codes:
            raise StimulusError(f"group {g}: datatype {dt!r} is not built into this unit (built: "
                                f"{', '.join(cfg.datatypes)}); quantise it to a built datatype or add it to "
                                f"BitSerialConfig.datatypes")
        if not 0 <= sc < (1 << cfg.scale_bits):
            raise StimulusError(f"group {g}: scale {sc} is outside the unsigned {cfg.scale_bits}-bit range "
                                f"0..{(1 << cfg.scale_bits) - 1}")
        sl = codes[g * cfg.group_size:(g + 1) * cfg.group_size]
        width = DATATYPES[dt].code_bits
        badc = np.flatnonzero((sl < 0) | (sl >= (1 << width)))
        if badc.size:
            i = g * cfg.group_size + badc[0]
            raise StimulusError(f"code[{i}] = {codes[i]} does not fit {dt} ({width}-bit codes, "
                                f"0..{(1 << width) - 1})")
    pa, pw = Packer(act_layout(cfg)), Packer(wgt_layout(cfg))
    act_beats, wgt_beats = [], []
    for g, (dt, sc) in enumerate(zip(dtypes, scales)):
        for b in range(cfg.beats_per_group):
            base = g * cfg.group_size + b * cfg.lanes
            act_beats.append(pa.pack([int(a) for a in acts[base:base + cfg.lanes]]))
            wgt_beats.append(pw.pack({"codes": [int(c) for c in codes[base:base + cfg.lanes]],
                                      "dtype": cfg.dtype_codes[dt], "scale": int(sc),
                                      "last": int(g == len(dtypes) - 1)}))
    cycles = stream_cycles(cfg, dtypes, [g == len(dtypes) - 1 for g in range(len(dtypes))])
    ones = [1] * cycles
    stim = Stimulus(sources={"act": act_beats, "wgt": wgt_beats}, source_valid={"act": ones, "wgt": ones},
                    sink_ready={"res": ones}, cycles=cycles)
    trace = run_model(BitSerialUnit(cfg), stim)
    out = [(c, o["res__payload"]) for c, o in enumerate(trace) if o["res__valid"]]
    if not out:
        raise AssertionError("the per-cycle model produced no result within the closed-form cycle count")
    return wrap(out[0][1], cfg.acc_bits), out[0][0] + 1

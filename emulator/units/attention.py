"""Per-cycle model of the spatial attention array, its closed-form latency, and a whole-attention runner.

Same ports as :class:`accel.rtl.attention.AttentionArray` (see :mod:`accel.interfaces.stimulus` for the contract,
:mod:`accel.interfaces.attention` for the payloads): streams ``q`` (Q tile, one head dimension per beat), ``k`` and
``v`` (chunks of ``rows`` keys/values, one head dimension per beat) in, ``o`` (the O tile, one head dimension per
beat) out, and a sticky ``error`` flag.

Cycle behaviour (the specification; ``docs/attention.md`` has the schedule drawn out)
--------------------------------------------------------------------------------------
A tile goes LOADQ -> RUN -> DIV -> OUT -> LOADQ. In LOADQ one Q beat is taken per cycle (``q.ready = 1``) until
the beat with ``last``; the tile's head dimension ``d`` is the number of Q beats.

In RUN the 2D array's multipliers do one *phase* at a time, each ``d`` beats long: QK(c) takes one K beat per cycle
(``k.ready = 1``) and accumulates ``q . k`` into every PE's accumulator; V(c) takes one V beat per cycle
(``v.ready = 1``), each column sums ``SLN * v`` and the 1D PE updates that head dimension of RNV. Every PE has a second
register (``sreg``): when the accumulator holds a finished chunk and ``sreg`` is free, the scores move into ``sreg``
at that clock edge and the softmax step (SM) of that chunk runs on it for two cycles while the multipliers go on:
SM0 (column max LM, 1D: RM' = max(RM, LM), PRM = exp2(RM - RM')), SM1 (2D: SLN = exp2(s - RM') in place, column sum
SLD, 1D: RD = RD * PRM + SLD). After SM1 the chunk waits in ``sreg`` for its V phase. At the end of a phase the next
one is chosen at that clock edge: V if ``sreg`` holds SLN; else QK if the accumulator is free and the last chunk's
QK has not been done; else none (idle) until one becomes possible. So the schedule is QK0, QK1 (with SM0), V0,
QK2 (with SM1), V1, ... QK(n-1), V(n-2), SM(n-1), V(n-1): the softmax work hides under the next chunk's QK.

DIV takes one cycle (each 1D PE normalises its RD and takes one reciprocal); OUT offers the ``d`` O beats
(``o.valid = 1``), each element ``(RNV * recip) >> shift`` computed as it leaves.

Masking: key ``i`` of a chunk is attended by query ``j`` iff ``i < keys`` and, on a causal tile,
``kpos + i <= qpos + j`` (``kpos``, ``keys`` from the chunk's first K beat; ``qpos``, ``causal`` from the Q tile's
last beat).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accel.config import AttentionConfig
from accel.errors import StimulusError
from accel.interfaces.attention import (DIV, FREE, IDLE, LOADQ, OUT, QK, RUN, SLN, SM0, SM1, V, k_layout, o_layout,
                                        q_layout, v_layout)
from accel.interfaces.packing import Packer
from accel.interfaces.stimulus import Stimulus, run_model
from accel.numerics import (_attn_dtype, _check_attn_inputs, attn_format, attn_reciprocal, attention_fixed,
                            causal_mask, exp2_neg)

__all__ = ["AttentionArray", "tile_cycles", "attention_cycles", "utilisation", "run_attention", "AttentionRun",
           "SM_CYCLES", "min_chunks_for_utilisation", "tile_beats", "golden"]

#: Cycles of the softmax step of one chunk (SM0, SM1).
SM_CYCLES = 2


class AttentionArray:
    """Per-cycle model of the attention array: ``reset()``, ``step(inputs) -> outputs``.

    Raises :class:`~accel.errors.StimulusError` in the cycle a beat breaks the unit's contract (a Q tile longer than
    ``head_dim`` beats, a ``shift`` beyond the score width, a chunk with 0 or more than ``rows`` keys); the RTL
    raises its sticky ``error`` flag one cycle later.
    """

    def __init__(self, config: AttentionConfig) -> None:
        self.config = config
        self.fmt = attn_format(config)
        self._q = Packer(q_layout(config))
        self._k = Packer(k_layout(config))
        self._v = Packer(v_layout(config))
        self._o = Packer(o_layout(config))
        self._dt = _attn_dtype(self.fmt)
        self._i = np.arange(config.rows)[:, None]
        self._j = np.arange(config.cols)[None, :]
        self.reset()

    # ---- state
    def reset(self) -> None:
        cfg = self.config
        self.mode = LOADQ
        self.cycle = 0
        self.busy_cycles = 0          # cycles in which the 2D array's multipliers did a MAC (a K or V transfer)
        self.qbuf = np.zeros((cfg.head_dim, cfg.cols), np.int64)
        self.qe = 0
        self.d = 0
        self.shift = 0
        self.causal = 0
        self.qpos = 0
        self._new_tile()

    def _new_tile(self) -> None:
        cfg, dt = self.config, self._dt
        self.phase = IDLE
        self.e = 0
        self.acc = np.zeros((cfg.rows, cfg.cols), np.int64)
        self.acc_full = False
        self.acc_meta = (0, 0, 0)       # keys, pos, last
        self.sreg = np.zeros((cfg.rows, cfg.cols), dt)
        self.sreg_state = FREE
        self.sreg_meta = (0, 0, 0)
        self.seen_last = False
        # 1D array: one PE per query
        self.valid = np.zeros(cfg.cols, bool)
        self.rm = np.zeros(cfg.cols, np.int64)
        self.prm = np.zeros(cfg.cols, dt)
        self.vmode = np.zeros(cfg.cols, np.int64)   # 0: no key in chunk (keep), 1: first keys (load), 2: rescale
        self.rd = np.zeros(cfg.cols, dt)
        self.rnv = np.zeros((cfg.head_dim, cfg.cols), dt)
        self.recip = np.zeros(cfg.cols, dt)
        self.osh = np.zeros(cfg.cols, np.int64)
        self.oe = 0

    def state_bits(self) -> dict[str, int]:
        """Bits of on-chip state by buffer (from the config only: nothing here depends on the sequence length)."""
        cfg, f = self.config, self.fmt
        return {
            "q_buffer": cfg.head_dim * cfg.cols * cfg.data_bits,
            "pe_acc": cfg.rows * cfg.cols * f.score_bits,
            "pe_sreg": cfg.rows * cfg.cols * max(f.score_bits, f.prob_frac_bits + 1),
            "rm": cfg.cols * f.score_bits,
            "prm": cfg.cols * (f.prob_frac_bits + 1),
            "rd": cfg.cols * f.rd_bits,
            "rnv": cfg.head_dim * cfg.cols * f.rnv_bits,
            "recip": cfg.cols * f.recip_bits,
        }

    # ---- helpers
    def _mask(self, meta: tuple[int, int, int]) -> np.ndarray:
        keys, kpos, _ = meta
        m = np.broadcast_to(self._i < keys, (self.config.rows, self.config.cols))
        if self.causal:
            m = m & (kpos + self._i <= self.qpos + self._j)
        return m

    def _sm0(self) -> None:
        allowed = self._mask(self.sreg_meta)
        s = self.sreg.astype(np.int64)
        any_key = allowed.any(axis=0)
        lm = np.where(allowed, s, np.iinfo(np.int64).min).max(axis=0)
        upd = any_key & self.valid
        rm_new = np.where(upd, np.maximum(self.rm, lm), np.where(any_key, lm, self.rm))
        self.prm = exp2_neg(np.where(upd, rm_new - self.rm, 0), self.shift, self.fmt).astype(self._dt)
        self.vmode = np.where(any_key, np.where(self.valid, 2, 1), 0)
        self.rm = rm_new

    def _sm1(self) -> None:
        P = self.fmt.prob_frac_bits
        allowed = self._mask(self.sreg_meta)
        s = self.sreg.astype(np.int64)
        diff = np.where(allowed, self.rm[None, :] - s, 0)
        sln = np.where(allowed, exp2_neg(diff, self.shift, self.fmt), 0).astype(self._dt)
        self.sreg = sln
        sld = sln.sum(axis=0)
        self.rd = np.where(self.vmode == 2, ((self.rd * self.prm) >> P) + sld,
                           np.where(self.vmode == 1, sld, self.rd))
        self.valid = self.valid | (self.vmode > 0)

    def _out_beat(self) -> list[int]:
        r = self.rnv[self.oe] * self.recip
        return [int(x) >> int(sh) for x, sh in zip(r, self.osh)]

    # ---- one clock
    def step(self, inputs: dict[str, int]) -> dict[str, int]:
        cfg = self.config
        mode, phase = self.mode, self.phase
        outs = {
            "q__ready": int(mode == LOADQ),
            "k__ready": int(mode == RUN and phase == QK),
            "v__ready": int(mode == RUN and phase == V),
            "o__valid": int(mode == OUT),
            "o__payload": self._o.pack({"data": self._out_beat(), "last": int(self.oe == self.d - 1)})
            if mode == OUT else 0,
            "error": 0,
        }
        self.cycle += 1

        if mode == LOADQ:
            if inputs["q__valid"]:
                b = self._q.unpack(inputs["q__payload"])
                self.qbuf[self.qe] = b["data"]
                if b["last"]:
                    if b["shift"] > self.fmt.max_score_frac_bits:
                        raise StimulusError(
                            f"Q tile shift = {b['shift']}: the score fraction bits must be at most "
                            f"{self.fmt.max_score_frac_bits} (the score width); lower the shift")
                    self.d = self.qe + 1
                    self.shift, self.causal, self.qpos = b["shift"], b["causal"], b["pos"]
                    self.qe = 0
                    self.mode, self.phase, self.e = RUN, QK, 0
                elif self.qe + 1 >= cfg.head_dim:
                    raise StimulusError(
                        f"Q tile beat {self.qe} without last: a tile has at most head_dim = {cfg.head_dim} beats "
                        f"(one per head dimension); set last on the final beat or split the head")
                else:
                    self.qe += 1
        elif mode == RUN:
            if self.sreg_state == SM0:
                self._sm0()
                self.sreg_state = SM1
            elif self.sreg_state == SM1:
                self._sm1()
                self.sreg_state = SLN
            if phase == QK and inputs["k__valid"]:
                b = self._k.unpack(inputs["k__payload"])
                self.busy_cycles += 1
                if self.e == 0:
                    if not 1 <= b["keys"] <= cfg.rows:
                        raise StimulusError(
                            f"K chunk with keys = {b['keys']}: a chunk holds 1 to rows = {cfg.rows} keys; "
                            f"split the keys into chunks of at most {cfg.rows}")
                    self.acc_meta = (b["keys"], b["pos"], b["last"])
                kcol = np.asarray(b["data"], np.int64)
                self.acc = self.acc + kcol[:, None] * self.qbuf[self.e][None, :]
                self.e += 1
                if self.e == self.d:
                    self.phase, self.e, self.acc_full = IDLE, 0, True
                    if self.acc_meta[2]:
                        self.seen_last = True
            elif phase == V and inputs["v__valid"]:
                P = self.fmt.prob_frac_bits
                vcol = np.asarray(self._v.unpack(inputs["v__payload"]), np.int64).astype(self._dt)
                self.busy_cycles += 1
                slnv = vcol.dot(self.sreg)
                r = self.rnv[self.e]
                self.rnv[self.e] = np.where(self.vmode == 2, ((r * self.prm) >> P) + slnv,
                                            np.where(self.vmode == 1, slnv, r))
                self.e += 1
                if self.e == self.d:
                    self.phase, self.e, self.sreg_state = IDLE, 0, FREE
            if self.acc_full and self.sreg_state == FREE:
                self.sreg = self.acc.astype(self._dt)
                self.sreg_meta = self.acc_meta
                self.acc = np.zeros_like(self.acc)
                self.acc_full = False
                self.sreg_state = SM0
            if self.phase == IDLE:
                if self.sreg_state == SLN:
                    self.phase = V
                elif not self.acc_full and not self.seen_last:
                    self.phase = QK
                elif self.seen_last and not self.acc_full and self.sreg_state == FREE:
                    self.mode = DIV
        elif mode == DIV:
            f = self.fmt
            for j in range(cfg.cols):
                if self.valid[j]:
                    recip, z = attn_reciprocal(int(self.rd[j]), f)
                    self.recip[j] = recip
                    self.osh[j] = 2 * f.prob_frac_bits + 1 + z - f.out_frac_bits
                else:
                    self.recip[j] = 0
                    self.osh[j] = 0
            self.mode, self.oe = OUT, 0
        else:  # OUT
            if inputs["o__ready"]:
                self.oe += 1
                if self.oe == self.d:
                    self._new_tile()
                    self.mode = LOADQ
        return outs


# --------------------------------------------------------------------------------------------------------------------
# Closed-form latency


def tile_cycles(d: int, chunks: int) -> int:
    """Cycles of one Q tile with every stream always valid and ready: from its first Q beat to its last O beat,
    inclusive.

    With ``m = max(d, SM_CYCLES)``: V(0) starts at ``2d + 2`` (one chunk) or ``2d + m``; each further V starts
    ``d + m`` after the previous (the next chunk's QK and the softmax step run side by side), the last one
    ``d + 2`` after its predecessor (its softmax step is exposed); then ``d`` V cycles, one DIV cycle and ``d`` O
    beats: ``total = s_last + 2d + 1``. For ``d >= 2`` that is ``2 d n + 2 d + 3``.
    """
    if d < 1 or chunks < 1:
        raise ValueError("d and chunks must be at least 1")
    if chunks == 1:
        s_last = 2 * d + SM_CYCLES
    else:
        m = max(d, SM_CYCLES)
        s_last = 2 * d + m + (chunks - 2) * (d + m) + d + SM_CYCLES
    return s_last + 2 * d + 1


def attention_cycles(config: AttentionConfig, n_queries: int, n_keys: int, d: int) -> int:
    """Cycles of a whole attention head: ``ceil(n_queries / cols)`` tiles back to back, each over
    ``ceil(n_keys / rows)`` chunks."""
    tiles = -(-n_queries // config.cols)
    return tiles * tile_cycles(d, -(-n_keys // config.rows))


def utilisation(d: int, chunks: int) -> float:
    """Fraction of a tile's cycles in which the 2D array multiplies (``2 d`` MAC cycles per chunk)."""
    return 2 * d * chunks / tile_cycles(d, chunks)


def min_chunks_for_utilisation(d: int, target: float = 0.9) -> int:
    """Fewest chunks per tile for which :func:`utilisation` reaches ``target`` (it rises with the chunk count)."""
    lo, hi = 1, 1
    while utilisation(d, hi) < target:
        hi *= 2
        if hi > 1 << 40:
            raise ValueError(f"utilisation {target} is out of reach for d = {d}")
    while lo < hi:
        mid = (lo + hi) // 2
        if utilisation(d, mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


# --------------------------------------------------------------------------------------------------------------------
# Whole attention through the per-cycle model


@dataclass(frozen=True)
class AttentionRun:
    """Result of :func:`run_attention`: integer outputs (``out_frac_bits`` fraction bits), cycles, 2D busy cycles."""

    out: np.ndarray
    cycles: int
    busy_cycles: int

    @property
    def utilisation(self) -> float:
        return self.busy_cycles / self.cycles


def tile_beats(config: AttentionConfig, q_tile: np.ndarray, k: np.ndarray, v: np.ndarray, shift: int,
               causal: bool, qpos: int) -> tuple[list[int], list[int], list[int]]:
    """Packed Q, K and V beats of one tile (``q_tile`` is ``(cols, d)``, zero-padded)."""
    pq, pk, pv = Packer(q_layout(config)), Packer(k_layout(config)), Packer(v_layout(config))
    d = q_tile.shape[1]
    R = config.rows
    qb = [pq.pack({"data": [int(x) for x in q_tile[:, e]], "last": int(e == d - 1), "shift": shift,
                   "causal": int(causal), "pos": qpos}) for e in range(d)]
    kb, vb = [], []
    n = k.shape[0]
    for c0 in range(0, n, R):
        keys = min(R, n - c0)
        kc = np.zeros((R, d), np.int64)
        vc = np.zeros((R, d), np.int64)
        kc[:keys], vc[:keys] = k[c0:c0 + keys], v[c0:c0 + keys]
        last = int(c0 + R >= n)
        kb += [pk.pack({"data": [int(x) for x in kc[:, e]], "last": last, "keys": keys, "pos": c0})
               for e in range(d)]
        vb += [pv.pack([int(x) for x in vc[:, e]]) for e in range(d)]
    return qb, kb, vb


def run_attention(config: AttentionConfig, q: np.ndarray, k: np.ndarray, v: np.ndarray, score_frac_bits: int,
                  causal: bool = False) -> AttentionRun:
    """Attention of integer ``q`` ``(nq, d)``, ``k``, ``v`` ``(nk, d)`` through the per-cycle model, tile by tile
    (streams always valid and ready). Inputs are checked as :func:`accel.numerics.attention_fixed` checks them."""
    fmt = attn_format(config)
    mask = causal_mask(np.shape(q)[0], np.shape(k)[0]) if causal else None
    q, k, v, _ = _check_attn_inputs(q, k, v, fmt, score_frac_bits, mask)
    nq, d = q.shape
    C = config.cols
    outs = []
    cycles = busy = 0
    model = AttentionArray(config)
    for t0 in range(0, nq, C):
        qt = np.zeros((C, d), np.int64)
        qt[:min(C, nq - t0)] = q[t0:t0 + C]
        qb, kb, vb = tile_beats(config, qt, k, v, score_frac_bits, causal, t0)
        n = tile_cycles(d, -(-k.shape[0] // config.rows))
        ones = [1] * n
        stim = Stimulus(sources={"q": qb, "k": kb, "v": vb}, source_valid={"q": ones, "k": ones, "v": ones},
                        sink_ready={"o": ones}, cycles=n)
        trace = run_model(model, stim)
        got = [model._o.unpack(o["o__payload"])["data"] for o in trace if o["o__valid"]]
        if len(got) != d:
            raise AssertionError(f"the per-cycle model gave {len(got)} O beats in the closed-form {n} cycles, not {d}")
        outs.append(np.array(got, np.int64).T[:min(C, nq - t0)])
        cycles += n
        busy += model.busy_cycles
    return AttentionRun(np.concatenate(outs), cycles, busy)


def golden(config: AttentionConfig, q, k, v, score_frac_bits: int, causal: bool = False) -> np.ndarray:
    """:func:`accel.numerics.attention_fixed` with this array's chunking (``rows`` keys per chunk)."""
    mask = causal_mask(np.shape(q)[0], np.shape(k)[0]) if causal else None
    return attention_fixed(q, k, v, attn_format(config), config.rows, score_frac_bits, mask)

"""GEMV ``y = W x`` as PIM channel programs, in the two layouts the anchors use.

* ``layout="rows"`` (AiM): output rows go to banks (one row per bank per *block*), channels split the output rows. The
  input vector is written to each channel's global buffer in chunks; an all-bank MAC streams a chunk's columns through
  all banks at once; RDMAC returns each bank's lane accumulators and the host adds the lanes.
* ``layout="ksplit"``: the K dimension is split across channels; every channel computes all output rows (rows per bank)
  on its K slice; the host adds the channels' partial sums (and the lanes).

A weight column holds ``mac_lanes`` consecutive weights of one output row (lane ``i`` gets ``k = 8j + i`` ... in
general ``k = j * mac_lanes + i``); zero padding fills K up to whole columns and M up to whole blocks. With bit-serial
lanes the weights are codes and every group of ``group_size`` weights carries its own datatype and scale, written to
the bank's CFR registers before the group's MACs (one all-bank CFR when all banks agree). Results are bit-exact
against :func:`accel.numerics.bitserial_dot` (and the int8 dot product for int8 lanes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from accel.config import DeviceConfig
from accel.errors import AccelError
from accel.isa import PimOp, encode

from accel.interfaces.pim import ACC_BITS, CFR_DTYPE, CFR_SCALE, unpack_slots

__all__ = ["GemvPlan", "gemv_plan", "run_gemv", "golden_gemv", "random_operands"]


@dataclass
class GemvPlan:
    """A GEMV program for a device: command words with data, DRAM preloads, and how to read the results back."""

    device: DeviceConfig
    m: int
    k: int
    layout: str
    program: list[tuple[int, Any]] = field(default_factory=list)
    preload: list[tuple[int, int, int, np.ndarray]] = field(default_factory=list)  # channel, bank, row, slots
    readout: list[list[tuple[int, int]]] = field(default_factory=list)  # per channel: (output row or -1, bank)

    def results(self, reads: Sequence[Sequence[tuple[int, int]]]) -> np.ndarray:
        """Host side: per-channel read beats (RDMAC words in order) -> ``y`` (int64, wrapped to 32 bits)."""
        p = self.device.pim
        y = np.zeros(self.m, dtype=np.int64)
        for ch, beats in enumerate(reads):
            expect = self.readout[ch]
            if len(beats) != len(expect):
                raise AccelError(f"channel {ch} returned {len(beats)} MAC registers, the plan expects {len(expect)}")
            for (_, word), (row, _) in zip(beats, expect):
                if row < 0:
                    continue
                lanes = unpack_slots(word, p.mac_lanes, ACC_BITS)
                lanes = lanes - ((lanes >> (ACC_BITS - 1)) << ACC_BITS)
                y[row] += int(lanes.sum())
        y &= (1 << ACC_BITS) - 1
        return y - ((y >> (ACC_BITS - 1)) << ACC_BITS)


def _cmd(plan: GemvPlan, ch: int, op: PimOp, data: Any = None, **f: int) -> None:
    plan.program.append((encode("pim", op, channel=ch, **f), data))


def _slots_of_acts(x: np.ndarray, slot_bits: int) -> np.ndarray:
    return x.astype(np.int64) & 0xFF


def gemv_plan(device: DeviceConfig, w: np.ndarray, x: np.ndarray, layout: str = "rows",
              dtypes: np.ndarray | None = None, scales: np.ndarray | None = None, channels: int | None = None,
              data: bool = True) -> GemvPlan:
    """Build the program for ``y = W x``.

    Parameters
    ----------
    w:
        ``M x K`` int8 weights (``lane="int8"``) or weight codes (``lane="bitserial"``).
    x:
        ``K`` int8 activations.
    layout:
        ``"rows"`` or ``"ksplit"`` (module docstring).
    dtypes, scales:
        Bit-serial lanes: ``M x (K / group_size)`` datatype codes and unsigned scales per group.
    channels:
        Channels to use (default: all of the device's).
    data:
        False builds a timing-only program (no preloads, WRGB data words are zeros).
    """
    p = device.pim
    w = np.asarray(w)
    x = np.asarray(x)
    m, k = w.shape
    if x.shape != (k,):
        raise AccelError(f"x has shape {x.shape}; W is {m} x {k}, so x must have shape ({k},)")
    if layout not in ("rows", "ksplit"):
        raise AccelError(f"layout = {layout!r}: must be 'rows' (output rows per bank) or 'ksplit' (K split across "
                         f"channels, host reduction)")
    nch = channels or p.channels
    if not 1 <= nch <= p.channels:
        raise AccelError(f"channels = {nch}: the device has {p.channels}")
    bs = device.bitserial if p.lane == "bitserial" else None
    if bs is not None:
        if dtypes is None or scales is None:
            raise AccelError("bit-serial lanes need dtypes and scales (M x K/group_size) for the weight codes")
        if k % bs.group_size:
            raise AccelError(f"K = {k} must be a multiple of group_size ({bs.group_size}) for bit-serial lanes")
        if bs.group_size % p.mac_lanes:
            raise AccelError(f"group_size {bs.group_size} must be a multiple of mac_lanes ({p.mac_lanes})")
    L, C, G, B = p.mac_lanes, p.columns, p.gb_columns, p.banks
    chunk = min(G, C)  # columns per global-buffer fill (both are powers of two)
    plan = GemvPlan(device, m, k, layout)
    plan.readout = [[] for _ in range(p.channels)]

    if layout == "rows":
        rows_per_ch = -(-m // nch)
        parts = [(ch, np.arange(ch * rows_per_ch, min(m, (ch + 1) * rows_per_ch)), 0, k) for ch in range(nch)]
    else:
        kc = -(-k // nch)
        if bs is not None:
            kc = -(-kc // bs.group_size) * bs.group_size
        parts = [(ch, np.arange(m), ch * kc, min(k, (ch + 1) * kc)) for ch in range(nch) if ch * kc < k]

    for ch, rows, k0, k1 in parts:
        if len(rows) == 0 or k1 <= k0:
            continue
        kk = k1 - k0
        ncols = -(-kk // L)
        rows_per_block = -(-ncols // C)
        blocks = -(-len(rows) // B)
        xs = np.zeros(ncols * L, dtype=np.int64)
        xs[:kk] = x[k0:k1]
        xcols = _slots_of_acts(xs, p.slot_bits).reshape(ncols, L)
        nchunks = -(-ncols // chunk)
        gsize = bs.group_size // L if bs is not None else None  # columns per group
        if data:
            for blk in range(blocks):
                for b in range(B):
                    i = blk * B + b
                    if i >= len(rows):
                        continue
                    wrow = np.zeros(ncols * L, dtype=np.int64)
                    wrow[:kk] = w[rows[i], k0:k1]
                    wcols = (wrow & ((1 << p.slot_bits) - 1) & 0xFF).reshape(ncols, L)
                    for r in range(rows_per_block):
                        seg = wcols[r * C:(r + 1) * C]
                        full = np.zeros((C, L), dtype=np.int64)
                        full[:len(seg)] = seg
                        plan.preload.append((ch, b, blk * rows_per_block + r, full))
        if (blk_rows := blocks * rows_per_block) > p.rows:
            raise AccelError(f"channel {ch} needs {blk_rows} DRAM rows per bank; the device has {p.rows}")
        cur = {}  # bank -> (dtype, scale) last written
        one_fill = nchunks == 1
        if one_fill:
            _cmd(plan, ch, PimOp.WRGB, xcols[:chunk] if data else np.zeros((min(chunk, ncols), L), np.int64),
                 col=0, count=min(chunk, ncols))
        for blk in range(blocks):
            _cmd(plan, ch, PimOp.CLRMAC, all_banks=1)
            for c in range(nchunks):
                j0, j1 = c * chunk, min(ncols, (c + 1) * chunk)
                if not one_fill:
                    _cmd(plan, ch, PimOp.WRGB, xcols[j0:j1] if data else np.zeros((j1 - j0, L), np.int64),
                         col=0, count=j1 - j0)
                row = blk * rows_per_block + j0 // C
                _cmd(plan, ch, PimOp.ACT, all_banks=1, row=row)
                # one MAC run per stretch of groups whose datatypes and scales need no CFR write in between
                j = run0 = j0
                while j < j1:
                    end = j1 if gsize is None else min(j1, (j // gsize + 1) * gsize)
                    if bs is not None:
                        cfrs = _group_cfr(cur, rows, blk, B, dtypes, scales, (k0 // L + j) // gsize)
                        if cfrs:
                            if j > run0:
                                _cmd(plan, ch, PimOp.MAC, all_banks=1, col=run0 % C, count=j - run0)
                            run0 = j
                            for f in cfrs:
                                _cmd(plan, ch, PimOp.CFR, **f)
                    j = end
                _cmd(plan, ch, PimOp.MAC, all_banks=1, col=run0 % C, count=j1 - run0)
                _cmd(plan, ch, PimOp.PRE, all_banks=1)
            _cmd(plan, ch, PimOp.RDMAC, all_banks=1)
            for b in range(B):
                i = blk * B + b
                plan.readout[ch].append((int(rows[i]) if i < len(rows) else -1, b))
    return plan


def _group_cfr(cur: dict, rows: np.ndarray, blk: int, B: int, dtypes: np.ndarray, scales: np.ndarray,
               g: int) -> list[dict[str, int]]:
    """The CFR writes (fields) that give each bank group ``g``'s datatype and scale, updating ``cur``: one all-bank
    write per register when every bank agrees, per-bank writes otherwise, nothing for values already set."""
    want = {}
    for b in range(B):
        i = blk * B + b
        if i < len(rows):
            want[b] = (int(dtypes[rows[i], g]), int(scales[rows[i], g]))
        else:
            want[b] = cur.get(b, (None, None))
    out: list[dict[str, int]] = []
    for reg, idx in ((CFR_DTYPE, 0), (CFR_SCALE, 1)):
        vals = {b: v[idx] for b, v in want.items() if v[idx] is not None}
        if not vals:
            continue
        if len(set(vals.values())) == 1 and len(vals) == B:
            (v,) = set(vals.values())
            if any(cur.get(b, (None, None))[idx] != v for b in range(B)):
                out.append(dict(all_banks=1, col=reg, row=v))
        else:
            for b, v in vals.items():
                if cur.get(b, (None, None))[idx] != v:
                    out.append(dict(bank=b, col=reg, row=v))
    for b, v in want.items():
        cur[b] = v
    return out


def golden_gemv(device: DeviceConfig, w: np.ndarray, x: np.ndarray, dtypes: np.ndarray | None = None,
                scales: np.ndarray | None = None) -> np.ndarray:
    """The golden numerics: int8 dot products, or :func:`accel.numerics.bitserial_dot` per output row (wrapped to
    32 bits)."""
    from accel.config import BITSERIAL_DATATYPES
    from accel.numerics import bitserial_dot, wrap

    p = device.pim
    if p.lane == "int8":
        y = w.astype(np.int64) @ x.astype(np.int64)
        return np.array([wrap(int(v), ACC_BITS) for v in y], dtype=np.int64)
    bs = device.bitserial
    out = []
    for r in range(w.shape[0]):
        names = [BITSERIAL_DATATYPES[int(d)] for d in dtypes[r]]
        out.append(bitserial_dot(x, w[r], names, [int(s) for s in scales[r]], bs.group_size, bs.scale_bits,
                                 bs.acc_bits))
    return np.array(out, dtype=np.int64)


def run_gemv(device: DeviceConfig, plan: GemvPlan) -> tuple[np.ndarray, Any]:
    """Run a plan in the functional engine; returns ``(y, stats)``."""
    from accel.emulator.engine import DeviceEngine

    eng = DeviceEngine(device, functional=True)
    for ch, bank, row, slots in plan.preload:
        eng.channels[ch].load_row(bank, row, slots)
    stats = eng.run(plan.program)
    reads = [[r for r in c.reads] for c in eng.channels]
    return plan.results(reads), stats


def random_operands(device: DeviceConfig, rng: np.random.Generator, m: int, k: int, extremes: float = 0.0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Random GEMV operands for the device's lanes: ``(w, x, dtypes, scales)``. For bit-serial lanes every group of
    every row draws a datatype of the preset and a scale, and the weights are random codes of that datatype; int8
    lanes get int8 weights (``dtypes``/``scales`` ``None``). With probability ``extremes`` the activations are all
    -128 and the scales the largest (the accumulator's worst case)."""
    from accel.config import BITSERIAL_DATATYPES
    from accel.numerics import DATATYPES

    x = rng.integers(-128, 128, k)
    if device.pim.lane == "int8":
        return rng.integers(-128, 128, (m, k)), x, None, None
    bs = device.bitserial
    gs = bs.group_size
    ng = -(-k // gs)
    dtypes = rng.choice(list(bs.dtype_codes.values()), (m, ng))
    scales = rng.integers(0, 1 << bs.scale_bits, (m, ng))
    w = np.zeros((m, k), dtype=np.int64)
    for r in range(m):
        for g in range(ng):
            bits = DATATYPES[BITSERIAL_DATATYPES[int(dtypes[r, g])]].code_bits
            w[r, g * gs:(g + 1) * gs] = rng.integers(0, 1 << bits, gs)[:min(gs, k - g * gs)]
    if rng.random() < extremes:
        x[:] = -128
        scales[:] = (1 << bs.scale_bits) - 1
    return w, x, dtypes, scales

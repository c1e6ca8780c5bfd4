"""GEMV ``y = W x`` as PIM channel programs, in the three layouts the mapper uses.

* ``layout="rows"`` (AiM): output rows go to banks (one row per bank per *block*), channels split the output rows. The
  input vector is written to each channel's global buffer in chunks; an all-bank MAC streams a chunk's columns through
  all banks at once; RDMAC returns each bank's lane accumulators and the host adds the lanes.
* ``layout="ksplit"``: the K dimension is split across channels; every channel computes all output rows (rows per bank)
  on its K slice; the host adds the channels' partial sums (and the lanes).
* ``layout="lanes"``: output rows go to banks *and* lanes (``banks x mac_lanes`` rows per block), channels split the
  output rows; a column holds one ``k`` of the ``mac_lanes`` rows of its bank, and every slot of a global-buffer column
  holds the same input ``x[k]``. Each lane accumulates a whole output, so RDMAC returns finished outputs (no lane sum)
  at the price of one global-buffer column per input element. The bank's datatype and scale (CFR) are shared by its
  lanes, so every group must have one datatype and scale across the rows of a bank: a KV cache (one format, one
  scale) fits it, BitMoD weight groups (a scale per row and group) do not.

In ``rows``/``ksplit`` a weight column holds ``mac_lanes`` consecutive weights of one output row (lane ``i`` gets
``k = j * mac_lanes + i``); zero padding fills K up to whole columns and M up to whole blocks. With bit-serial lanes
the weights are codes and every group of ``group_size`` weights (the last one may be shorter: GPT-2's K = 1600 is
12.5 groups of 128) carries its own datatype and scale, written to the
bank's CFR registers before the group's MACs (one all-bank CFR when all banks agree). Results are bit-exact against
:func:`accel.numerics.bitserial_dot` (and the int8 dot product for int8 lanes).

A plan can be built from operands (:func:`gemv_plan`) or, for timing-only programs, from the shape alone
(:func:`gemv_program`); ``row0`` places the matrix from that DRAM row on, ``act_first`` opens each DRAM row before
writing the global buffer chunk it needs, so that the global-buffer writes run under the activate-to-MAC delay.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from accel.config import DeviceConfig
from accel.errors import AccelError
from accel.isa import PimOp, encode

from accel.interfaces.pim import ACC_BITS, CFR_DTYPE, CFR_SCALE, unpack_slots

__all__ = ["GemvPlan", "LAYOUTS", "gemv_plan", "gemv_program", "gemv_shape", "run_gemv", "golden_gemv",
           "random_operands"]

#: The layouts (module docstring).
LAYOUTS = ("rows", "ksplit", "lanes")


@dataclass
class GemvPlan:
    """A GEMV program for a device: command words with data, DRAM preloads, and how to read the results back.

    ``readout[ch]`` lists, per RDMAC beat of channel ``ch`` in order, ``(lane_rows, bank, input)``: the output row
    each lane of that bank adds to (-1: padding) and the input vector it belongs to. ``rows_used`` is the number of
    DRAM rows (per bank) the matrix occupies from ``row0`` on in every channel it uses. ``inputs`` is the number of
    input vectors (``Y = X W^T`` for ``X`` of ``inputs`` rows).
    """

    device: DeviceConfig
    m: int
    k: int
    layout: str
    program: list[tuple[int, Any]] = field(default_factory=list)
    preload: list[tuple[int, int, int, np.ndarray]] = field(default_factory=list)  # channel, bank, row, slots
    readout: list[list[tuple[tuple[int, ...], int, int]]] = field(default_factory=list)
    rows_used: int = 0
    inputs: int = 1

    def results(self, reads: Sequence[Sequence[tuple[int, int]]]) -> np.ndarray:
        """Host side: per-channel read beats (RDMAC words in order) -> ``y`` (int64, wrapped to 32 bits; ``inputs x
        M`` for several input vectors)."""
        p = self.device.pim
        y = np.zeros((self.inputs, self.m), dtype=np.int64)
        for ch, beats in enumerate(reads):
            expect = self.readout[ch]
            if len(beats) != len(expect):
                raise AccelError(f"channel {ch} returned {len(beats)} MAC registers, the plan expects {len(expect)}")
            for (_, word), (lane_rows, _, i) in zip(beats, expect):
                lanes = unpack_slots(word, p.mac_lanes, ACC_BITS)
                lanes = lanes - ((lanes >> (ACC_BITS - 1)) << ACC_BITS)
                for row, v in zip(lane_rows, lanes.tolist()):
                    if row >= 0:
                        y[i, row] += v
        y &= (1 << ACC_BITS) - 1
        y = y - ((y >> (ACC_BITS - 1)) << ACC_BITS)
        return y[0] if self.inputs == 1 else y


@lru_cache(maxsize=65536)
def _word(op: PimOp, fields: tuple[tuple[str, int], ...]) -> int:
    return encode("pim", op, **dict(fields))


def _cmd(plan: GemvPlan, ch: int, op: PimOp, data: Any = None, **f: int) -> None:
    plan.program.append((_word(op, tuple(sorted(f.items())) + (("channel", ch),)), data))


def gemv_shape(device: DeviceConfig, m: int, k: int, layout: str, code_bits: float = 8) -> tuple[int, int, int]:
    """``(columns, DRAM rows per block, blocks)`` of one channel's ``m x k`` slice of ``code_bits``-bit weights in a
    layout: the columns of one output row's K (``rows``/``ksplit``: :meth:`accel.config.PimConfig.weights_per_column`
    weights each) or of one block's K (``lanes``: one ``k`` per column)."""
    p = device.pim
    outs = p.banks * p.mac_lanes if layout == "lanes" else p.banks
    ncols = k if layout == "lanes" else -(-k // p.weights_per_column(code_bits))
    return ncols, -(-ncols // p.columns), -(-m // outs)


def gemv_plan(device: DeviceConfig, w: np.ndarray, x: np.ndarray, layout: str = "rows",
              dtypes: np.ndarray | None = None, scales: np.ndarray | None = None, channels: int | None = None,
              data: bool = True, *, row0: int = 0, act_first: bool = False) -> GemvPlan:
    """Build the program for ``y = W x``.

    Parameters
    ----------
    w:
        ``M x K`` int8 weights (``lane="int8"``) or weight codes (``lane="bitserial"``).
    x:
        ``K`` int8 activations, or ``inputs x K`` for several input vectors (each DRAM row activation then serves
        every input: per input a global-buffer fill, the MACs and a readout of the chunk's partial sums).
    layout:
        ``"rows"``, ``"ksplit"`` or ``"lanes"`` (module docstring).
    dtypes, scales:
        Bit-serial lanes: ``M x (K / group_size)`` datatype codes and unsigned scales per group.
    channels:
        Channels to use (default: all of the device's).
    data:
        False builds a timing-only program (no preloads, WRGB data words are zeros).
    row0:
        First DRAM row of the matrix in every bank (rows ``row0 .. row0 + rows_used - 1``).
    act_first:
        Activate each DRAM row before writing the global-buffer chunk its MACs read (the writes then run under the
        activate-to-MAC delay); by default the chunk is written first.
    """
    w = np.asarray(w)
    x = np.asarray(x)
    m, k = w.shape
    if x.shape[-1:] != (k,) or x.ndim not in (1, 2):
        raise AccelError(f"x has shape {x.shape}; W is {m} x {k}, so x must have shape ({k},) or (inputs, {k})")
    inputs = 1 if x.ndim == 1 else x.shape[0]
    return _plan(device, m, k, w if data else None, x.reshape(inputs, k) if data else None, layout, dtypes, scales,
                 channels, row0, act_first, inputs, zeros=True)


def gemv_program(device: DeviceConfig, m: int, k: int, layout: str = "rows", dtypes: np.ndarray | None = None,
                 scales: np.ndarray | None = None, channels: int | None = None, *, row0: int = 0,
                 act_first: bool = False, inputs: int = 1) -> GemvPlan:
    """The timing-only plan of an ``m x k`` GEMV (``inputs`` input vectors) from its shape (no operands, no data
    words, no preloads): the command stream :func:`gemv_plan` builds for any operands with these datatypes and
    scales. Parameters as :func:`gemv_plan`."""
    return _plan(device, m, k, None, None, layout, dtypes, scales, channels, row0, act_first, inputs, zeros=False)


def _plan(device: DeviceConfig, m: int, k: int, w: np.ndarray | None, x: np.ndarray | None, layout: str,
          dtypes: np.ndarray | None, scales: np.ndarray | None, channels: int | None, row0: int, act_first: bool,
          inputs: int, zeros: bool) -> GemvPlan:
    p = device.pim
    data = w is not None
    if layout not in LAYOUTS:
        raise AccelError(f"layout = {layout!r}: must be 'rows' (output rows per bank), 'ksplit' (K split across "
                         f"channels, host reduction) or 'lanes' (output rows per bank and lane)")
    nch = channels or p.channels
    if not 1 <= nch <= p.channels:
        raise AccelError(f"channels = {nch}: the device has {p.channels}")
    bs = device.bitserial if p.lane == "bitserial" else None
    if bs is not None:
        if dtypes is None or scales is None:
            raise AccelError("bit-serial lanes need dtypes and scales (M x K/group_size) for the weight codes")
        if bs.group_size % p.mac_lanes:
            raise AccelError(f"group_size {bs.group_size} must be a multiple of mac_lanes ({p.mac_lanes})")
    lanes = layout == "lanes"
    # a column holds mac_lanes weights, one per lane slot (PimConfig.weights_per_column today: the packed-weights
    # change redefines both together)
    L, C, G, B = p.mac_lanes, p.columns, p.gb_columns, p.banks
    per = L if not lanes else 1            # K elements per column of one output row
    outs = B * L if lanes else B           # output rows per block
    chunk = min(G, C)  # columns per global-buffer fill (both are powers of two)
    if inputs < 1:
        raise AccelError(f"inputs = {inputs}: a GEMV has at least one input vector")
    plan = GemvPlan(device, m, k, layout, inputs=inputs)
    plan.readout = [[] for _ in range(p.channels)]

    if layout == "ksplit":
        kc = -(-k // nch)
        if bs is not None:
            kc = -(-kc // bs.group_size) * bs.group_size
        parts = [(ch, np.arange(m), ch * kc, min(k, (ch + 1) * kc)) for ch in range(nch) if ch * kc < k]
    else:
        rows_per_ch = -(-m // nch)
        if lanes:   # channels split at whole banks' rows (the rows sharing a bank's registers)
            rows_per_ch = -(-rows_per_ch // L) * L
        parts = [(ch, np.arange(ch * rows_per_ch, min(m, (ch + 1) * rows_per_ch)), 0, k) for ch in range(nch)]

    for ch, rows, k0, k1 in parts:
        if len(rows) == 0 or k1 <= k0:
            continue
        kk = k1 - k0
        ncols = -(-kk // per)
        rows_per_block = -(-ncols // C)
        blocks = -(-len(rows) // outs)
        if lanes and bs is not None:
            _check_lane_groups(rows, outs, L, dtypes, scales)
        xs = np.zeros((inputs, ncols * per), dtype=np.int64)
        if data:
            xs[:, :kk] = x[:, k0:k1]
        acts = xs & 0xFF
        xcols = np.repeat(acts[:, :, None], L, axis=2) if lanes else acts.reshape(inputs, ncols, L)
        nchunks = -(-ncols // chunk)
        gsize = bs.group_size // per if bs is not None else None  # columns per group
        if data:
            _preload(plan, ch, rows, w, k0, k1, ncols, per, outs, blocks, rows_per_block, row0, lanes)
        plan.rows_used = max(plan.rows_used, blocks * rows_per_block)
        if (top := row0 + blocks * rows_per_block) > p.rows:
            raise AccelError(f"channel {ch} needs DRAM rows {row0} .. {top - 1} per bank; the device has {p.rows}")

        def fill(i: int, j0: int, j1: int) -> None:
            words = xcols[i, j0:j1] if data else np.zeros((j1 - j0, L), np.int64) if zeros else None
            _cmd(plan, ch, PimOp.WRGB, words, col=0, count=j1 - j0)

        def macs(blk: int, j0: int, j1: int) -> None:
            # one MAC run per stretch of groups whose datatypes and scales need no CFR write in between
            j = run0 = j0
            while j < j1:
                end = j1 if gsize is None else min(j1, (j // gsize + 1) * gsize)
                if bs is not None:
                    cfrs = _group_cfr(cur, rows, blk, outs, L if lanes else 1, B, dtypes, scales,
                                      (k0 // per + j) // gsize)
                    if cfrs:
                        if j > run0:
                            _cmd(plan, ch, PimOp.MAC, all_banks=1, col=run0 % C, count=j - run0)
                        run0 = j
                        for f in cfrs:
                            _cmd(plan, ch, PimOp.CFR, **f)
                j = end
            _cmd(plan, ch, PimOp.MAC, all_banks=1, col=run0 % C, count=j1 - run0)

        def readout(blk: int, i: int) -> None:
            _cmd(plan, ch, PimOp.RDMAC, all_banks=1)
            for b in range(B):
                idx = [blk * outs + b * L + ln if lanes else blk * B + b for ln in range(L)]
                plan.readout[ch].append((tuple(int(rows[r]) if r < len(rows) else -1 for r in idx), b, i))

        cur = {}  # bank -> (dtype, scale) last written
        one_fill = nchunks == 1 and inputs == 1   # the whole input fits the global buffer: written once
        if one_fill and not act_first:
            fill(0, 0, ncols)
        for blk in range(blocks):
            if inputs == 1:
                _cmd(plan, ch, PimOp.CLRMAC, all_banks=1)
            for c in range(nchunks):
                j0, j1 = c * chunk, min(ncols, (c + 1) * chunk)
                row = row0 + blk * rows_per_block + j0 // C
                if inputs > 1:
                    # one activation serves every input: per input a fill, the MACs and a readout of this chunk's
                    # partial sums (the host adds the chunks)
                    _cmd(plan, ch, PimOp.ACT, all_banks=1, row=row)
                    for i in range(inputs):
                        _cmd(plan, ch, PimOp.CLRMAC, all_banks=1)
                        fill(i, j0, j1)
                        macs(blk, j0, j1)
                        readout(blk, i)
                    _cmd(plan, ch, PimOp.PRE, all_banks=1)
                    continue
                if act_first:
                    _cmd(plan, ch, PimOp.ACT, all_banks=1, row=row)
                    if not one_fill or blk == 0:
                        fill(0, j0, j1)
                else:
                    if not one_fill:
                        fill(0, j0, j1)
                    _cmd(plan, ch, PimOp.ACT, all_banks=1, row=row)
                macs(blk, j0, j1)
                _cmd(plan, ch, PimOp.PRE, all_banks=1)
            if inputs == 1:
                readout(blk, 0)
    return plan


def _preload(plan: GemvPlan, ch: int, rows: np.ndarray, w: np.ndarray, k0: int, k1: int, ncols: int, per: int,
             outs: int, blocks: int, rows_per_block: int, row0: int, lanes: bool) -> None:
    """The DRAM rows of one channel's slice: ``(channel, bank, row, columns x lanes slots)`` per bank and row."""
    p = plan.device.pim
    L, C, B = p.mac_lanes, p.columns, p.banks
    kk = k1 - k0
    for blk in range(blocks):
        for b in range(B):
            # the slots of this bank's columns: columns x lanes
            cols = np.zeros((ncols, L), dtype=np.int64)
            for i in range(L if lanes else 1):
                r = blk * outs + b * L + i if lanes else blk * B + b
                if r >= len(rows):
                    continue
                wrow = np.zeros(ncols * per, dtype=np.int64)
                wrow[:kk] = w[rows[r], k0:k1]
                if lanes:
                    cols[:, i] = wrow
                else:
                    cols[:] = wrow.reshape(ncols, L)
            cols &= ((1 << p.slot_bits) - 1) & 0xFF
            for r in range(rows_per_block):
                seg = cols[r * C:(r + 1) * C]
                full = np.zeros((C, L), dtype=np.int64)
                full[:len(seg)] = seg
                plan.preload.append((ch, b, row0 + blk * rows_per_block + r, full))


def _check_lane_groups(rows: np.ndarray, outs: int, L: int, dtypes: np.ndarray, scales: np.ndarray) -> None:
    """``lanes`` layout with bit-serial lanes: the rows sharing a bank need one datatype and scale per group."""
    for start in range(0, len(rows), L):
        sel = rows[start:start + L]
        for name, arr in (("datatype", dtypes), ("scale", scales)):
            v = np.asarray(arr)[sel]
            if (v != v[:1]).any():
                raise AccelError(f"layout 'lanes': output rows {int(sel[0])} .. {int(sel[-1])} share a bank's "
                                 f"{name} register but their groups' {name}s differ; use layout 'rows' (a {name} "
                                 f"per row and group)")


def _group_cfr(cur: dict, rows: np.ndarray, blk: int, outs: int, step: int, B: int, dtypes: np.ndarray,
               scales: np.ndarray, g: int) -> list[dict[str, int]]:
    """The CFR writes (fields) that give each bank group ``g``'s datatype and scale, updating ``cur``: one all-bank
    write per register when every bank agrees, per-bank writes otherwise, nothing for values already set. Bank ``b``
    takes the values of row ``blk * outs + b * step`` (its first lane's row in layout ``lanes``)."""
    want = {}
    for b in range(B):
        i = blk * outs + b * step
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
        y = np.asarray(x).astype(np.int64) @ w.astype(np.int64).T
        return np.vectorize(lambda v: wrap(int(v), ACC_BITS), otypes=[np.int64])(y)
    bs = device.bitserial
    if np.ndim(x) == 2:
        return np.stack([golden_gemv(device, w, xi, dtypes, scales) for xi in x])
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


def random_operands(device: DeviceConfig, rng: np.random.Generator, m: int, k: int, extremes: float = 0.0,
                    shared: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Random GEMV operands for the device's lanes: ``(w, x, dtypes, scales)``. For bit-serial lanes every group of
    every row draws a datatype of the preset and a scale (rows ``shared * i .. shared * i + shared - 1`` share them:
    ``shared = mac_lanes`` gives operands for layout ``lanes``), and the weights are random codes of that datatype;
    int8 lanes get int8 weights (``dtypes``/``scales`` ``None``). With probability ``extremes`` the activations are
    all -128 and the scales the largest (the accumulator's worst case)."""
    from accel.config import BITSERIAL_DATATYPES
    from accel.numerics import DATATYPES

    x = rng.integers(-128, 128, k)
    if device.pim.lane == "int8":
        return rng.integers(-128, 128, (m, k)), x, None, None
    bs = device.bitserial
    gs = bs.group_size
    ng = -(-k // gs)
    dtypes = np.repeat(rng.choice(list(bs.dtype_codes.values()), (-(-m // shared), ng)), shared, axis=0)[:m]
    scales = np.repeat(rng.integers(0, 1 << bs.scale_bits, (-(-m // shared), ng)), shared, axis=0)[:m]
    w = np.zeros((m, k), dtype=np.int64)
    for r in range(m):
        for g in range(ng):
            bits = DATATYPES[BITSERIAL_DATATYPES[int(dtypes[r, g])]].code_bits
            w[r, g * gs:(g + 1) * gs] = rng.integers(0, 1 << bits, gs)[:min(gs, k - g * gs)]
    if rng.random() < extremes:
        x[:] = -128
        scales[:] = (1 << bs.scale_bits) - 1
    return w, x, dtypes, scales
